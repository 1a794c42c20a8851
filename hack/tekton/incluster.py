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
# Resolvers are a separate install (config/resolvers) that the tests here do not use.
SKIP = ("resolvers",)
DEPLOYMENTS = ("tekton-pipelines-controller", "tekton-pipelines-webhook", "tekton-events-controller")
SHELL_FLAGS = ("-shell-image", "-shell-image-win")


class ReleaseError(RuntimeError):
    pass


def release_files(moddir: Path) -> list[Path]:
    cfg = moddir / "config"
    files = [p for p in cfg.rglob("*.yaml") if p.relative_to(cfg).parts[0] not in SKIP]
    return sorted(files, key=lambda p: str(p.relative_to(cfg)))


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


def release(images: dict[str, str], moddir: Path | None = None) -> list[dict[str, Any]]:
    """Tekton's release documents with local images: ``images`` maps each command (controller, webhook,
    entrypoint, nop, workingdirinit, sidecarlogresults, events) and ``shell`` to an image reference."""
    moddir = moddir or module_dir()
    docs: list[dict[str, Any]] = []
    missing: set[str] = set()
    for path in release_files(moddir):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc:
                docs.append(_swap(copy.deepcopy(doc), images, missing))
    if missing:
        raise ReleaseError(f"no local image for Tekton's {', '.join(sorted(missing))}")
    return docs


def install(kubectl: Any, images: dict[str, str], workdir: Path, timeout: float = 300.0) -> None:
    """``kubectl apply`` of the release, then waits until the Deployments are available.

    ``kubectl(*args)`` runs kubectl against the cluster and raises on failure."""
    path = workdir / "tekton-release.yaml"
    path.write_text(yaml.safe_dump_all(release(images), sort_keys=False))
    wait = (
        "-n", SYSTEM_NAMESPACE, "wait", "--for=condition=Available", f"--timeout={int(timeout)}s",
        *(f"deployment/{d}" for d in DEPLOYMENTS),
    )  # fmt: skip
    try:
        kubectl("-n", SYSTEM_NAMESPACE, "get", "deployment/tekton-pipelines-webhook")
    except Exception:  # not installed yet
        pass
    else:
        # Installed: its webhook validates Tekton's own ConfigMaps, so re-applying waits until it serves
        # (after a cluster restart its pods come back on their own).
        kubectl(*wait)
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
    kubectl(*wait)
