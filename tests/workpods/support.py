"""Helpers shared by the work-pod tests that run their own controller: a host-process controller whose
work image is the project image built from the Containerfile, and a writer pod (the non-root step image)
that puts model files on a local-path PVC."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from tests.e2e.conftest import ControllerProcess
from tests.fixtures.cluster import RealCluster, wait_for_pod_phase

USER = 65532


@contextlib.asynccontextmanager
async def host_controller(
    real_cluster: RealCluster, namespace: str, work_image: str, log: Path, **env: str
) -> AsyncIterator[ControllerProcess]:
    """A ready controller for `namespace` (a process on this host, as `make run` starts it)."""
    env = {
        "MODELPUSH_WORK_IMAGE": work_image,
        "MODELPUSH_INSECURE_REGISTRIES": real_cluster.registry,
        **env,
    }
    ctl = ControllerProcess(real_cluster.kubeconfig, namespace, log, env).start()
    try:
        await ctl.wait_ready()
        yield ctl
    finally:
        ctl.stop()


async def write_model(
    core: client.CoreV1Api, namespace: str, step_image: str, files: dict[str, int | str], claim: str = "model"
) -> None:
    """Creates PVC `claim` (default StorageClass) and fills /workspace/model/m with `files` (name -> that many
    bytes of random data, or that text) from a writer pod running as another non-root UID."""
    await core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    lines = ["set -eu", "mkdir -p /workspace/model/m", "cd /workspace/model/m"]
    lines += [
        f"head -c {body} /dev/urandom > {name}" if isinstance(body, int) else f"printf '%s' '{body}' > {name}"
        for name, body in files.items()
    ]
    pod: dict[str, Any] = {
        "metadata": {"name": "writer"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": USER, "runAsGroup": USER, "fsGroup": USER, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "write",
                    "image": step_image,
                    "command": ["sh", "-c", "\n".join(lines)],
                    "volumeMounts": [{"name": "model", "mountPath": "/workspace/model"}],
                    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                }
            ],
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }
    await core.create_namespaced_pod(namespace, pod)
    got = await wait_for_pod_phase(core, namespace, "writer", {"Succeeded", "Failed"}, timeout=180)
    assert got["status"]["phase"] == "Succeeded", got["status"]


async def storage_left(core: client.CoreV1Api, namespace: str, step_image: str, claim: str = "model") -> str:
    """What a compat mode left under the workspace's `.modelpush/` (its buildah/skopeo storage), as listed by
    a pod of the work pods' user: empty when the push cleaned up after itself."""
    listing = (
        "find /workspace/model/.modelpush -mindepth 1 -maxdepth 3 2>/dev/null | head -20"
        " > /dev/termination-log"
    )
    pod: dict[str, Any] = {
        "metadata": {"name": "lister"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": USER, "runAsGroup": USER, "runAsNonRoot": True},
            "containers": [
                {
                    "name": "list",
                    "image": step_image,
                    "command": ["sh", "-c", listing],
                    "volumeMounts": [{"name": "model", "mountPath": "/workspace/model", "readOnly": True}],
                    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                }
            ],
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }
    await core.create_namespaced_pod(namespace, pod)
    got = await wait_for_pod_phase(core, namespace, "lister", {"Succeeded", "Failed"}, timeout=180)
    assert got["status"]["phase"] == "Succeeded", got["status"]
    return str(got["status"]["containerStatuses"][0]["state"]["terminated"].get("message") or "").strip()
