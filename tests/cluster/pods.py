"""Pod manifests for the cluster tests: bash on the local Debian base image, in a real container."""

from typing import Any

from hack.localcluster.realcluster import RealCluster
from hack.localcluster.topology import SMALL_LABEL, SMALL_TAINT

TOLERATE_SMALL = {
    "nodeSelector": {SMALL_LABEL[0]: SMALL_LABEL[1]},
    "tolerations": [{"key": SMALL_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
}


def bash_pod(rc: RealCluster, name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A run-once pod whose container `main` runs `bash -c script`; `container=` adds container fields,
    `metadata=` metadata fields, anything else goes into the pod spec."""
    container: dict[str, Any] = {"name": "main", "image": rc.image("base"), "command": ["bash", "-c", script]}
    container |= spec.pop("container", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }
