"""Dynamic provisioning: Rancher's local-path-provisioner, run in the cluster from its own release manifest.

The binary is built from its Go module (``hack/build-local-path.sh``) and put alone in an image, the same
way ``hack.images`` builds the pause image; the manifest is the module's ``deploy/local-path-storage.yaml``
with three changes: the provisioner's image, the helper pod's image (the local Debian base instead of
``busybox``), and the node path, which lives under the cluster dir so that teardown removes every volume.
Its StorageClass ``local-path`` (WaitForFirstConsumer) is marked the cluster default.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from hack.images.cache import Key, build_slot
from hack.images.oci import Entry, LayoutWriter
from hack.images.publish import publish
from hack.localcluster.binaries import REPO

NAME = "local-path-provisioner"
RECIPE = "local-path-provisioner/1"
BUILD = REPO / "hack" / "build-local-path.sh"
STORAGE_CLASS = "local-path"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def _script(*args: str) -> Path:
    out = subprocess.run(["bash", str(BUILD), *args], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def image(registry: str) -> str:
    """Builds (once, cached by content) and pushes the provisioner image; returns its reference."""
    binary = _script()
    key = Key(RECIPE).add_file("binary", binary).hexdigest()
    with build_slot(NAME, key) as (final, tmp):
        if tmp is not None:
            w = LayoutWriter(tmp)
            w.files_layer([Entry("usr/bin/local-path-provisioner", 0o755, source=binary)], "COPY provisioner")
            w.finish({"Env": ["PATH=/usr/bin"], "Entrypoint": ["local-path-provisioner"]})
    publish(final, registry, f"modelpush/{NAME}", key)
    return f"{registry}/modelpush/{NAME}:{key}"


def manifests(provisioner_image: str, helper_image: str, volumes_dir: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(_script("--manifest").read_text()) if d]
    for d in docs:
        kind = d["kind"]
        if kind == "Deployment":
            d["spec"]["template"]["spec"]["containers"][0]["image"] = provisioner_image
        elif kind == "StorageClass":
            d["metadata"].setdefault("annotations", {})[DEFAULT_CLASS] = "true"
        elif kind == "ConfigMap" and d["metadata"]["name"] == "local-path-config":
            data = d["data"]
            data["config.json"] = json.dumps(
                {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes_dir)]}]}
            )
            helper = yaml.safe_load(data["helperPod.yaml"])
            helper["spec"]["containers"][0]["image"] = helper_image
            data["helperPod.yaml"] = yaml.safe_dump(helper, sort_keys=False)
    return docs


def install(kubectl: Any, registry: str, helper_image: str, volumes_dir: Path, workdir: Path) -> None:
    """Applies the manifest and waits until the provisioner runs. ``kubectl(*args)`` raises on failure."""
    volumes_dir.mkdir(parents=True, exist_ok=True)
    path = workdir / "local-path-storage.yaml"
    path.write_text(
        yaml.safe_dump_all(manifests(image(registry), helper_image, volumes_dir), sort_keys=False)
    )
    kubectl("apply", "--server-side", "-f", str(path))
    kubectl(
        "-n", "local-path-storage", "wait", "--for=condition=Available", "--timeout=180s",
        "deployment/local-path-provisioner",
    )  # fmt: skip
