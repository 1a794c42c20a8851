"""Pod manifests for the cluster tests."""

from typing import Any

from tests.fixtures.cluster import WORK_IMAGE


def pod(name: str, script: str, *, shell: bool = False, **spec: Any) -> dict[str, Any]:
    command = ["sh", "-c", script] if shell else ["python3", "-c", script]
    container: dict[str, Any] = {"name": "main", "image": WORK_IMAGE, "command": command}
    container |= spec.pop("container", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }
