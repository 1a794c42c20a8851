"""KServe's modelcar pod on real nodes (real kubelet + containerd): the pushed image serves as KServe runs it.

The pod is shaped as KServe's `ConfigureModelcarToContainer` shapes it (pkg/utils/storage.go, v0.17.0):
`shareProcessNamespace: true`, an emptyDir `kserve-provision-location` at /mnt, the `modelcar-init` init
container and the `modelcar` sidecar with KServe's own args (read from the module, `$$` escapes included,
so the kubelet expands them as it does for KServe), and a "server" container standing in for the model
runtime, which reads every file through /mnt/models and reports each sha256 in its termination message.
Every container runs as the same non-root UID (KServe #4995: /proc/PID/root needs matching credentials).

Images are built by the native build (this repo's CLI) and pushed to the real cluster's registry, which
its containerd nodes pull from over plain HTTP; the Debian base and the server's image are hack/images'.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.kserve import modelcar_commands
from tests.fixtures.cluster import RealCluster, read_pod, wait_for
from tests.push.helpers import run_build

UID = 1000
VOLUME = "kserve-provision-location"  # constants.StorageInitializerVolumeName
FILES = ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]


@pytest.fixture(scope="module")
def debian_base(real_cluster: RealCluster) -> str:
    return real_cluster.image("base")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kserve-pod") / "model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["TinyForCausalLM"]}\n')
    (root / "model.safetensors").write_bytes(hashlib.sha256(b"weights").digest() * 50_000)
    (root / "tokenizer" / "tokenizer.json").write_text('{"v": 1}\n')
    return root


def modelcar_pod(name: str, image: str, server_image: str) -> dict[str, Any]:
    cmds = modelcar_commands(image)
    mount = [{"name": VOLUME, "mountPath": cmds.mount_dir}]
    res = {"limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "10m", "memory": "16Mi"}}
    # The server waits for the sidecar's link (KServe sets the runtime's model init mode to async).
    server = (
        f"for i in $(seq 120); do [ -e {cmds.model_path}/config.json ] && break; sleep 1; done; "
        f"cd {cmds.model_path}/ && sha256sum {' '.join(FILES)} > /dev/termination-log"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "shareProcessNamespace": True,
            "securityContext": {"runAsUser": UID, "runAsGroup": UID, "runAsNonRoot": True},
            "volumes": [{"name": VOLUME, "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "modelcar-init",
                    "image": image,
                    "args": cmds.pod_init_args,
                    "resources": res,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": server_image,
                    "command": ["sh", "-c", server],
                    "env": [{"name": "MODEL_INIT_MODE", "value": "async"}],
                    "volumeMounts": mount,
                    "resources": res,
                },
                {
                    "name": "modelcar",
                    "image": image,
                    "args": cmds.pod_sidecar_args,
                    "volumeMounts": mount,
                    "resources": res,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                },
            ],
        },
    }


def _state(pod: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for st in pod.get("status", {}).get(key) or []:
        if st["name"] == name:
            return st.get("state") or {}
    return {}


async def _run(core: client.CoreV1Api, ns: str, manifest: dict[str, Any]) -> dict[str, Any]:
    await core.create_namespaced_pod(ns, manifest)
    name = manifest["metadata"]["name"]

    async def settled() -> dict[str, Any] | None:
        pod = await read_pod(core, ns, name)
        if "terminated" in _state(pod, "kserve-container") or pod.get("status", {}).get("phase") == "Failed":
            return pod
        return None

    try:
        return await wait_for(settled, timeout=300, what=f"pod {name} to finish serving")
    finally:
        await core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


@pytest.mark.parametrize("base", ["default", "debian"])
async def test_kserve_serves_the_image(
    base: str,
    real_cluster: RealCluster,
    real_api: client.ApiClient,
    real_namespace: str,
    debian_base: str,
    model: Path,
) -> None:
    registry = real_cluster.registry
    extra = ["--base", debian_base] if base == "debian" else []
    repo = f"kserve-pod/{base}:v1"
    built = run_build(registry, model, repo, *extra)
    assert built.rc == 0, built.stderr
    core = client.CoreV1Api(real_api)
    pod = await _run(core, real_namespace, modelcar_pod(f"serve-{base}", f"{registry}/{repo}", debian_base))
    init = _state(pod, "modelcar-init", init=True)["terminated"]
    assert (init["exitCode"], init["reason"]) == (0, "Completed"), init
    server = _state(pod, "kserve-container")["terminated"]
    assert server["exitCode"] == 0, server
    want = "".join(f"{hashlib.sha256((model / f).read_bytes()).hexdigest()}  {f}\n" for f in FILES)
    assert server["message"] == want
    assert "running" in _state(pod, "modelcar")  # the sidecar still holds the model for the runtime


async def test_bare_image_fails_in_modelcar_init(
    real_cluster: RealCluster,
    real_api: client.ApiClient,
    real_namespace: str,
    debian_base: str,
    model: Path,
) -> None:
    registry = real_cluster.registry
    built = run_build(registry, model, "kserve-pod/bare:v1", "--base", "none")
    assert built.rc == 0, built.stderr
    core = client.CoreV1Api(real_api)
    pod = await _run(
        core, real_namespace, modelcar_pod("serve-bare", f"{registry}/kserve-pod/bare:v1", debian_base)
    )
    assert pod["status"]["phase"] == "Failed"
    init = _state(pod, "modelcar-init", init=True)["terminated"]
    # No shell in the image: containerd cannot start KServe's `sh -c`.
    assert (init["exitCode"], init["reason"]) == (128, "StartError"), init
    assert '"sh"' in init["message"] and "not found" in init["message"], init
    assert "running" not in _state(pod, "kserve-container")  # the runtime never started


async def test_modelcar_pod_spec_is_accepted(real_api: client.ApiClient, real_namespace: str) -> None:
    """KServe's args, `$$` escapes included: the kubelet's expansion gives `sh` what KServe gives it."""
    manifest = modelcar_pod("shape", "registry.local:5000/m:v1", "registry.local:5000/debian:12")
    core = client.CoreV1Api(real_api)
    created = await core.create_namespaced_pod(real_namespace, manifest, dry_run="All")
    spec = created.spec
    assert spec.share_process_namespace is True
    init, (server, sidecar) = spec.init_containers[0], spec.containers
    assert init.name == "modelcar-init" and sidecar.name == "modelcar"
    assert sidecar.args[-1] == "ln -sf /proc/$$$$/root/models /mnt/models && sleep infinity"
    assert '[ "$$(ls -A /models)" ]' in init.args[-1]
    assert spec.volumes[0].empty_dir is not None
    assert sidecar.volume_mounts[0].mount_path == server.volume_mounts[0].mount_path == "/mnt"
    assert spec.security_context.run_as_user == UID and spec.security_context.run_as_non_root
