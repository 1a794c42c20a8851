"""Tekton's CRDs and config ConfigMaps, read from the Go module cache and adapted to a webhook-less cluster.

Nothing is copied into the repo: the manifests come from the same `github.com/tektoncd/pipeline` module
version the controller binary is built from (`go mod download -json` gives its directory).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from hack.gotoolchain import go_binary

DEFAULT_VERSION = "v1.9.1"
SYSTEM_NAMESPACE = "tekton-pipelines"
MODULE = "github.com/tektoncd/pipeline"

# Feature flags that differ from Tekton's release defaults, and why:
FEATURE_FLAG_OVERRIDES: dict[str, str] = {
    # The affinity assistant is a StatefulSet whose pod must run a container; neither a StatefulSet
    # controller nor a container runtime exists here, and our custom task places its own pod anyway.
    "coschedule": "disabled",
    # No injected sidecars (Istio) in this cluster; saves a pod-status round trip for TaskRuns.
    "running-in-environment-with-injected-sidecars": "false",
}

Manifest = dict[str, Any]


def tekton_version() -> str:
    return os.environ.get("TEKTON_VERSION", DEFAULT_VERSION)


def module_dir(version: str | None = None) -> Path:
    """Return the module cache directory of github.com/tektoncd/pipeline@version (downloads it if needed)."""
    version = version or tekton_version()
    out = subprocess.run(
        [go_binary(), "mod", "download", "-json", f"{MODULE}@{version}"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
        cwd="/",
    )
    info = json.loads(out.stdout)
    if "Error" in info:
        raise RuntimeError(f"go mod download {MODULE}@{version} failed: {info['Error']}")
    return Path(info["Dir"])


def _load_yaml_docs(path: Path) -> list[Manifest]:
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def patch_crd(crd: Manifest) -> Manifest:
    """Drop the conversion webhook: there is no webhook Service, and every object we use is stored in
    the version we write (tekton.dev/v1 Pipelines/PipelineRuns, v1beta1 CustomRuns), so `None` is exact."""
    crd = copy.deepcopy(crd)
    crd["spec"]["conversion"] = {"strategy": "None"}
    return crd


def patch_feature_flags(cm: Manifest, overrides: dict[str, str] | None = None) -> Manifest:
    cm = copy.deepcopy(cm)
    cm.setdefault("data", {}).update(FEATURE_FLAG_OVERRIDES if overrides is None else overrides)
    return cm


def crds(moddir: Path) -> list[Manifest]:
    docs: list[Manifest] = []
    for path in sorted((moddir / "config" / "300-crds").glob("*.yaml")):
        docs += [patch_crd(d) for d in _load_yaml_docs(path) if d.get("kind") == "CustomResourceDefinition"]
    return docs


def config_maps(moddir: Path, namespace: str = SYSTEM_NAMESPACE) -> list[Manifest]:
    """Every `config/config-*.yaml` ConfigMap of the release (the controller watches several of them and
    refuses to start when one it watches without a default is missing)."""
    docs: list[Manifest] = []
    for path in sorted((moddir / "config").glob("config-*.yaml")):
        for doc in _load_yaml_docs(path):
            if doc.get("kind") != "ConfigMap":
                continue
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = namespace
            if doc["metadata"]["name"] == "feature-flags":
                doc = patch_feature_flags(doc)
            docs.append(doc)
    return docs


def namespace_manifest(namespace: str = SYSTEM_NAMESPACE) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "tekton-pipelines"}},
    }
