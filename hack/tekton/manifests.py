"""Where Tekton's release manifests are (the Go module cache), and its CRDs for a cluster without Tekton's
webhook: every local control plane serves them from its start; the in-cluster install
(hack/tekton/incluster.py) then applies the release's own CRDs with their conversion webhook.

Nothing is copied into the repo: the manifests come from the same `github.com/tektoncd/pipeline` module
version the images are built from (`go mod download -json` gives its directory).
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
    """Drop the conversion webhook until Tekton's webhook Service exists: objects are stored in the version
    they are written in (tekton.dev/v1 Pipelines/PipelineRuns, v1beta1 CustomRuns), so `None` is exact."""
    crd = copy.deepcopy(crd)
    crd["spec"]["conversion"] = {"strategy": "None"}
    return crd


def crds(moddir: Path) -> list[Manifest]:
    docs: list[Manifest] = []
    for path in sorted((moddir / "config" / "300-crds").glob("*.yaml")):
        docs += [patch_crd(d) for d in _load_yaml_docs(path) if d.get("kind") == "CustomResourceDefinition"]
    return docs
