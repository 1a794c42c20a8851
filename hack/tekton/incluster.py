"""Tekton Pipelines installed in the cluster the way users install it: its release manifests, applied.

The manifests are the module's own ``config/`` (``go mod download -json`` gives its directory; nothing is
copied into this repo): namespace, RBAC, CRDs, webhook configurations, ConfigMaps, the controller, webhook
and events Deployments. The only change is the image references: each ``ko://.../cmd/<name>`` (what ``ko``
resolves in Tekton's release) becomes the locally built image of that command, and the ``-shell-image``
flags the local Debian base. ``coschedule: workspaces`` (the affinity assistant) is the release default.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml

from hack.tekton.manifests import SYSTEM_NAMESPACE, module_dir

KO_PREFIX = "ko://github.com/tektoncd/pipeline/cmd/"
RESOLVERS_NAMESPACE = "tekton-pipelines-resolvers"
# namespace -> the Deployments install() waits for
DEPLOYMENTS = {
    SYSTEM_NAMESPACE: ("tekton-pipelines-controller", "tekton-pipelines-webhook", "tekton-events-controller"),
    RESOLVERS_NAMESPACE: ("tekton-pipelines-remote-resolvers",),
}
# (kind, namespace, name) -> data keys set over the release's values, so nothing calls outside on a default.
OFFLINE: dict[tuple[str, str, str], dict[str, str]] = {
    ("ConfigMap", RESOLVERS_NAMESPACE, "git-resolver-config"): {"default-url": ""},
    ("ConfigMap", RESOLVERS_NAMESPACE, "resolvers-feature-flags"): {"enable-hub-resolver": "false"},
}
SHELL_FLAGS = ("-shell-image", "-shell-image-win")


class ReleaseError(RuntimeError):
    pass


def release_files(moddir: Path) -> list[Path]:
    cfg = moddir / "config"
    return sorted(cfg.rglob("*.yaml"), key=lambda p: str(p.relative_to(cfg)))


def _swap(node: Any, images: dict[str, str], missing: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _swap(v, images, missing) for k, v in node.items()}
    if isinstance(node, list):
        out = [_swap(v, images, missing) for v in node]
        for i, v in enumerate(out[:-1]):
            if v in SHELL_FLAGS:
                out[i + 1] = images["shell"]
        return out
    if isinstance(node, str) and node.startswith(KO_PREFIX):
        name = node[len(KO_PREFIX) :]
        if name not in images:
            missing.add(name)
        return images.get(name, node)
    return node


def _offline(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata") or {}
    data = OFFLINE.get((doc["kind"], meta.get("namespace", ""), meta.get("name", "")))
    if data:
        doc["data"] = {**(doc.get("data") or {}), **data}
    return doc


def release(images: dict[str, str], moddir: Path | None = None) -> list[dict[str, Any]]:
    """Tekton's release documents with local images: ``images`` maps each command (controller, webhook,
    entrypoint, nop, workingdirinit, sidecarlogresults, events, resolvers) and ``shell`` to an image
    reference."""
    moddir = moddir or module_dir()
    docs: list[dict[str, Any]] = []
    missing: set[str] = set()
    for path in release_files(moddir):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc:
                docs.append(_offline(_swap(copy.deepcopy(doc), images, missing)))
    if missing:
        raise ReleaseError(f"no local image for Tekton's {', '.join(sorted(missing))}")
    return docs


def install(kubectl: Any, images: dict[str, str], workdir: Path, timeout: float = 300.0) -> None:
    """``kubectl apply`` of the release, then waits until every Deployment has rolled out (its pods of the
    applied template ready), the resolvers' included.

    ``kubectl(*args)`` runs kubectl against the cluster and raises on failure."""
    path = workdir / "tekton-release.yaml"
    path.write_text(yaml.safe_dump_all(release(images), sort_keys=False))

    def wait(namespace: str) -> None:
        kubectl(
            "-n", namespace, "wait", "--for=condition=Available", f"--timeout={int(timeout)}s",
            *(f"deployment/{d}" for d in DEPLOYMENTS[namespace]),
        )  # fmt: skip

    try:
        kubectl("-n", SYSTEM_NAMESPACE, "get", "deployment/tekton-pipelines-webhook")
    except Exception:  # not installed yet
        pass
    else:
        # Installed: its webhook validates Tekton's own ConfigMaps, so re-applying waits until it serves
        # (after a cluster restart its pods come back on their own).
        wait(SYSTEM_NAMESPACE)
    deadline = time.monotonic() + timeout
    while True:
        try:
            kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
            break
        except Exception as e:
            # Available can be stale right after a restart while the webhook has no endpoint yet.
            if "failed calling webhook" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(3)
    # Not `wait --for=condition=Available`: a Deployment whose image changed stays Available on its old pod.
    for namespace, names in DEPLOYMENTS.items():
        for name in names:
            kubectl("-n", namespace, "rollout", "status", f"deployment/{name}", f"--timeout={int(timeout)}s")
