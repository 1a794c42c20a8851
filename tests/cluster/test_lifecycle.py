"""Pod lifecycle on the real kubelet, as the controller meets it: deadlines, graceful deletion (SIGTERM,
then SIGKILL after the grace period) and an image the registry does not have."""

from kubernetes_asyncio import client

from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import read_pod, wait_for, wait_for_pod_phase


async def test_active_deadline_fails_pod_with_deadline_exceeded(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    spec = bash_pod(
        real_cluster, "slow", "exec sleep 300", activeDeadlineSeconds=2, terminationGracePeriodSeconds=1
    )
    await core.create_namespaced_pod(real_namespace, spec)

    got = await wait_for_pod_phase(core, real_namespace, "slow", {"Succeeded", "Failed"}, timeout=90)

    assert got["status"]["phase"] == "Failed"
    assert got["status"]["reason"] == "DeadlineExceeded"
    assert got["status"]["message"] == "Pod was active on the node longer than the specified deadline"


async def _gone(core: client.CoreV1Api, ns: str, name: str, within: float) -> None:
    async def removed() -> bool:
        return name not in {p.metadata.name for p in (await core.list_namespaced_pod(ns)).items}

    await wait_for(removed, within, f"pod {ns}/{name} removed")


async def test_graceful_deletion_sends_sigterm_then_removes_pod(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    claim = {
        "metadata": {"name": "out"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    await core.create_namespaced_persistent_volume_claim(real_namespace, claim)
    volume = {
        "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "out"}}],
        "container": {"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
    }
    # bash is PID 1: only a trapped SIGTERM reaches it; `wait` returns as soon as the trap has run.
    script = "trap 'echo got SIGTERM > /out/sigterm; exit 0' TERM; sleep 300 & wait"
    await core.create_namespaced_pod(real_namespace, bash_pod(real_cluster, "polite", script, **volume))
    await wait_for_pod_phase(core, real_namespace, "polite", "Running", timeout=120)

    await core.delete_namespaced_pod("polite", real_namespace, grace_period_seconds=30)

    await _gone(core, real_namespace, "polite", 60)
    # What the pod's handler wrote, read back by a second pod on the same volume.
    read = bash_pod(real_cluster, "reader", "cat /out/sigterm > /dev/termination-log", **volume)
    await core.create_namespaced_pod(real_namespace, read)
    got = await wait_for_pod_phase(core, real_namespace, "reader", {"Succeeded", "Failed"}, timeout=120)
    assert got["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "got SIGTERM\n"


async def test_process_ignoring_sigterm_is_killed_after_grace_period(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    script = "trap '' TERM; sleep 300 & wait"
    spec = bash_pod(real_cluster, "stubborn", script, terminationGracePeriodSeconds=2)
    await core.create_namespaced_pod(real_namespace, spec)
    await wait_for_pod_phase(core, real_namespace, "stubborn", "Running", timeout=120)

    await core.delete_namespaced_pod("stubborn", real_namespace)

    # The kubelet removes the pod only once the runtime reports its container stopped: SIGKILL did it.
    await _gone(core, real_namespace, "stubborn", 60)

    async def killing() -> bool:
        events = await core.list_namespaced_event(
            real_namespace, field_selector="involvedObject.name=stubborn"
        )
        return any(e.reason == "Killing" and e.source.component == "kubelet" for e in events.items)

    await wait_for(killing, 30, "the kubelet's Killing event")


async def test_unknown_image_waits_with_errimagepull(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    # In the local registry (nothing is ever pulled from outside): the repository does not exist there.
    image = f"{real_cluster.registry}/{real_namespace}/no-such-image:v1"
    await core.create_namespaced_pod(
        real_namespace, bash_pod(real_cluster, "nope", "true", container={"image": image})
    )

    async def pulling() -> dict | None:
        p = await read_pod(core, real_namespace, "nope")
        cs = p.get("status", {}).get("containerStatuses") or [{}]
        waiting = cs[0].get("state", {}).get("waiting") or {}
        return p if waiting.get("reason") == "ErrImagePull" else None

    got = await wait_for(pulling, 90, "ErrImagePull")
    assert got["status"]["phase"] == "Pending"
    message = got["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert image in message and "not found" in message, message
