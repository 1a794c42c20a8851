"""Each failure reason driven end to end: a real apiserver, the controller as a process, its work pods on
the real kubelets, real registries.

Every test asserts the exact `Succeeded=False` reason and a message that names the cause, and that the run
leaves no pod behind where the controller is the one that must delete it.

Evictions come from the real parts: the kubelet's node-pressure eviction on `local-small` (its kubelet root
is a small tmpfs) and an eviction through the API's `pods/eviction` (what `kubectl drain` does). Memory
pressure is not driven: it would need the shared 2-core host's memory filled; the controller reads that
kubelet message the same way as the storage one (tests/unit/controller/test_eviction_messages.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from hack.localcluster.realcluster import RealCluster
from hack.localcluster.topology import SMALL_NODE
from hack.registry import LocalRegistry
from tests.e2e.conftest import WS, CustomRuns, cond, stuck_copy, wait_pod_phase
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

DEADLINE = "Pod was active on the node longer than the specified deadline"
ON_SMALL_NODE = {
    "node-selector": '{"modelpush.dev/node-size": "small"}',
    "tolerations": '[{"key": "modelpush.dev/small", "operator": "Exists", "effect": "NoSchedule"}]',
}
# what the node keeps free while the test fills it: below its nodefs.available threshold (10% of 512Mi)
LEFT_FREE = 24 * 1024 * 1024


async def pods_gone(crs: CustomRuns, run: str) -> None:
    async def gone() -> bool:
        return all(p["metadata"].get("deletionTimestamp") for p in await crs.pods(run))

    await wait_for(gone, 60, f"the pods of {run} deleted")


async def test_invalid_work_image_is_pod_failed(
    controllers, crs: CustomRuns, real_pvc, real_namespace
) -> None:
    bad = "quay.io//modelpush/model-image-push:latest"  # `//`: no image reference
    await controllers(MODELPUSH_WORK_IMAGE=bad)
    await real_pvc(real_namespace, "model")
    await crs.create("badimage-1", {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1"}, WS)
    run = await crs.wait_done("badimage-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PodFailed"), c
    assert "InvalidImageName" in c["message"] and bad in c["message"], c["message"]
    assert "invalid reference format" in c["message"]
    await pods_gone(crs, "badimage-1")


async def test_api_eviction_is_pod_evicted(
    controllers, crs: CustomRuns, real_api, gateway_registry: LocalRegistry, blackhole: str
) -> None:
    """`kubectl drain` evicts through the API: the kubelet stops the container and the pod's only word on
    why is its DisruptionTarget condition, which the run reports instead of the push's exit code. The push
    (PID 1 of its container) ends on the kubelet's SIGTERM (143) instead of running on until the SIGKILL
    (137) after the grace period."""
    await controllers()
    core = client.CoreV1Api(real_api)
    await crs.create("apievict-1", stuck_copy(blackhole, gateway_registry))
    pod = (await wait_pod_phase(crs, "apievict-1", "Running"))["metadata"]["name"]
    exits = asyncio.create_task(exit_codes_until_deleted(core, crs.ns, pod))
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": crs.ns}}
    await core.create_namespaced_pod_eviction(pod, crs.ns, eviction)
    assert await asyncio.wait_for(exits, 120) == {143}
    run = await crs.wait_done("apievict-1", limit=120)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PodEvicted"), c
    assert pod in c["message"] and "EvictionByEvictionAPI" in c["message"], c
    assert "eviction" not in run["status"].get("extraFields", {}), "an API eviction has no storage figures"


async def exit_codes_until_deleted(core: client.CoreV1Api, ns: str, pod: str) -> set[int]:
    """The exit codes the pod's containers showed, watched until the pod is deleted."""
    codes: set[int] = set()
    w = watch.Watch()
    async for event in w.stream(
        core.list_namespaced_pod, ns, field_selector=f"metadata.name={pod}", timeout_seconds=120
    ):
        for cs in event["object"].status.container_statuses or []:
            if cs.state and cs.state.terminated:
                codes.add(cs.state.terminated.exit_code)
        if event["type"] == "DELETED":
            w.stop()
    return codes


async def small_node_pods(core: client.CoreV1Api) -> list[str]:
    pods = await core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={SMALL_NODE}")
    return [
        f"{p.metadata.namespace}/{p.metadata.name}"
        for p in pods.items
        if p.status.phase in ("Pending", "Running") and not p.metadata.deletion_timestamp
    ]


async def disk_pressure(core: client.CoreV1Api) -> bool:
    node = await core.read_node(SMALL_NODE)
    return {c.type: c.status for c in node.status.conditions}.get("DiskPressure") == "True"


@pytest.fixture
async def fill_small_node(real_cluster: RealCluster, real_api) -> AsyncIterator[Any]:
    """`await fill()` takes the small node's tmpfs down to LEFT_FREE with a file outside any pod (as an
    image pull or the node's own logs would), so the kubelet must evict by rank while no pod exceeds its
    request. Removed after, and the node is waited for until it leaves DiskPressure (its 30 s transition
    period), so later users of the shared node find it usable."""
    core = client.CoreV1Api(real_api)
    filler: Path = real_cluster.local.nodes().paths(SMALL_NODE).tmpfs / f"filler-{os.getpid()}"

    async def fill() -> None:
        await asyncio.to_thread(_fill, filler)

    try:
        yield fill
    finally:
        await asyncio.to_thread(filler.unlink, missing_ok=True)
        await wait_for(lambda: _not(disk_pressure(core)), 180, f"{SMALL_NODE} out of DiskPressure")


def _fill(filler: Path) -> None:
    st = os.statvfs(filler.parent)
    size = st.f_bavail * st.f_frsize - LEFT_FREE
    assert size > 0, f"{SMALL_NODE} has less than {LEFT_FREE} bytes free already"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as f:  # written, not truncated: tmpfs counts only the pages in use
        for _ in range(size >> 20):
            f.write(chunk)


async def _not(check: Any) -> bool:
    return not await check


async def test_node_pressure_eviction_reports_the_kubelets_figures(
    controllers,
    crs: CustomRuns,
    real_api,
    gateway_registry: LocalRegistry,
    blackhole: str,
    fill_small_node: Any,
) -> None:
    core = client.CoreV1Api(real_api)
    await wait_for(lambda: _not(disk_pressure(core)), 180, f"{SMALL_NODE} without DiskPressure")
    await controllers(MODELPUSH_RETRY_ON_EVICTION="false")
    params = {**stuck_copy(blackhole, gateway_registry), **ON_SMALL_NODE, "ephemeral-storage": "64Mi"}
    await crs.create("nodepressure-1", params)
    pod = await wait_pod_phase(crs, "nodepressure-1", "Running")
    assert pod["spec"]["nodeName"] == SMALL_NODE
    mine = f"{crs.ns}/{pod['metadata']['name']}"

    # the kubelet evicts by rank; with another test's pod on the shared node it could pick that one first
    async def alone() -> bool:
        return await small_node_pods(core) == [mine]

    await wait_for(alone, 180, f"the work pod alone on {SMALL_NODE}")
    await fill_small_node()
    run = await crs.wait_done("nodepressure-1", limit=180)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "EphemeralStorageExhausted"), c
    assert "ephemeral-storage" in c["message"], c["message"]
    ev = run["status"]["extraFields"]["eviction"]
    print(f"node-pressure eviction: {ev}")
    assert ev["node"] == SMALL_NODE and ev["requested"] == "64Mi", ev
    assert ev["message"].startswith("The node was low on resource: ephemeral-storage."), ev
    # the kubelet's figures, as it wrote them: its threshold (10% of the tmpfs) and what was left
    assert ev["threshold"] and ev["available"], ev


async def test_missing_source_is_final_push_failed(
    controllers, crs: CustomRuns, gateway_registry: LocalRegistry, real_namespace
) -> None:
    await controllers()
    source = f"{gateway_registry.host}/{real_namespace}/never-pushed:v1"
    await crs.create(
        "nosource-1",
        {"source": f"docker://{source}", "image": f"{gateway_registry.host}/{real_namespace}/c:1"},
    )
    run = await crs.wait_done("nosource-1", limit=90)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PushFailed"), c
    assert f"{real_namespace}/never-pushed" in c["message"] and "not found" in c["message"].lower(), c[
        "message"
    ]
    assert not run["status"].get("retriesStatus")


async def test_pod_deadline_exceeded_names_the_kubelet_cause(
    controllers, crs: CustomRuns, gateway_registry: LocalRegistry, blackhole: str
) -> None:
    """The controller's own timer normally fires first; when it is down, the pod's activeDeadlineSeconds
    (which the controller sets to the attempt's remaining time) ends the pod and its message is kept."""
    first = await controllers()
    await crs.create("deadline-1", stuck_copy(blackhole, gateway_registry), timeout="15s")

    async def created() -> list[dict]:
        return await crs.pods("deadline-1")

    pod = (await wait_for(created, 60, "the work pod"))[0]
    first.kill()  # well before 15s; the run must still be open, so the kubelet's deadline is what ends it
    assert cond(await crs.get("deadline-1"))["status"] == "Unknown"
    assert pod["spec"]["activeDeadlineSeconds"] <= 15
    failed = await wait_pod_phase(crs, "deadline-1", "Failed")
    assert failed["status"]["reason"] == "DeadlineExceeded", failed["status"]
    await controllers()
    run = await crs.wait_done("deadline-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "CustomRunTimedOut"), c
    assert DEADLINE in c["message"] and "Attempt 1" in c["message"], c["message"]


async def test_resource_quota_rejection(
    controllers, crs: CustomRuns, real_api, real_pvc, real_namespace
) -> None:
    await controllers()
    await real_pvc(real_namespace, "model")
    core = client.CoreV1Api(real_api)
    await core.create_namespaced_resource_quota(
        real_namespace,
        {"metadata": {"name": "storage-cap"}, "spec": {"hard": {"limits.ephemeral-storage": "1Gi"}}},
    )

    async def quota_counted() -> bool:  # admission refuses every pod until the quota controller filled status
        q = await core.read_namespaced_resource_quota("storage-cap", real_namespace)
        return bool(q.status and q.status.hard)

    await wait_for(quota_counted, 60, "ResourceQuota status")
    params = {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "ephemeral-storage": "5Gi"}
    await crs.create("quota-1", params, WS, retries=2)
    run = await crs.wait_done("quota-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PodRejected"), c
    for needle in (
        "exceeded quota: storage-cap",
        "limits.ephemeral-storage=5Gi",
        "limited: limits.ephemeral-storage=1Gi",
    ):
        assert needle in c["message"], c["message"]
    assert await crs.pods() == []
    assert not run["status"].get("retriesStatus"), "a quota rejection is final: no retry can fix it"
