"""Each failure reason driven end to end: a real apiserver, the controller as a process, real registries.

Every test asserts the exact `Succeeded=False` reason and a message that names the cause, and that the run
leaves no pod behind where the controller is the one that must delete it.

Two evictions (memory pressure, node pressure) are written onto the pod by `kubelet_evicts`, with the
kubelet's own status and message text (k8s.io/kubernetes v1.33.13 pkg/kubelet/eviction/helpers.go): the
local node agent measures no memory, and counts only pods' ephemeral storage, where the work pod's limit
(equal to its request) is always hit before the node's allocatable. The assertions are on the
controller's reason and message only; with real kubelet nodes these two move to real evictions unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.registry import LocalRegistry
from tests.e2e.conftest import WS, CustomRuns, cond, stuck_copy, wait_pod_phase
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

# The kubelet's eviction message formats (pkg/kubelet/eviction/helpers.go).
NODE_LOW = "The node was low on resource: {resource}. "
THRESHOLD_MET = "Threshold quantity: {threshold}, available: {available}. "
CONTAINER_USAGE = (
    "Container {name} was using {usage}, request is {request}, has larger consumption of {resource}. "
)
DEADLINE = "Pod was active on the node longer than the specified deadline"


async def kubelet_evicts(core: client.CoreV1Api, ns: str, pod: str, message: str) -> None:
    """Write the status the kubelet's eviction manager writes when it evicts `pod` (killPodFunc)."""
    status = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": message,
        "conditions": [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": message,
            }
        ],
        "containerStatuses": [
            {
                "name": "push",
                "ready": False,
                "restartCount": 0,
                "image": "quay.io/modelpush/model-image-push:latest",
                "imageID": "",
                "state": {"terminated": {"exitCode": 137, "reason": "Error"}},
            }
        ],
    }
    await core.patch_namespaced_pod_status(
        pod, ns, {"status": status}, _content_type="application/merge-patch+json"
    )


async def pods_gone(crs: CustomRuns, run: str) -> None:
    async def gone() -> bool:
        return all(p["metadata"].get("deletionTimestamp") for p in await crs.pods(run))

    await wait_for(gone, 60, f"the pods of {run} deleted")


async def test_invalid_work_image_is_pod_failed(controllers, crs: CustomRuns, make_pvc, namespace) -> None:
    bad = "quay.io//modelpush/model-image-push:latest"  # `//`: no image reference
    await controllers(MODELPUSH_WORK_IMAGE=bad)
    await make_pvc(namespace, "model")
    await crs.create("badimage-1", {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1"}, WS)
    run = await crs.wait_done("badimage-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PodFailed"), c
    assert "InvalidImageName" in c["message"] and bad in c["message"], c["message"]
    assert "invalid reference format" in c["message"]
    await pods_gone(crs, "badimage-1")


def pressure_message(resource: str, threshold: str, available: str, usage: str, request: str) -> str:
    """The eviction manager's message for a node-pressure eviction of container `push`."""
    return (
        NODE_LOW.format(resource=resource)
        + THRESHOLD_MET.format(threshold=threshold, available=available)
        + CONTAINER_USAGE.format(name="push", usage=usage, request=request, resource=resource)
    )


async def evict_while_running(
    crs: CustomRuns, kube_api, registry: LocalRegistry, blackhole: str, name: str, message: str
) -> tuple[dict[str, Any], str]:
    """Start a run whose push hangs, evict its pod as the kubelet would; return the finished run, pod name."""
    await crs.create(name, stuck_copy(blackhole, registry))
    pod = (await wait_pod_phase(crs, name, "Running"))["metadata"]["name"]
    await kubelet_evicts(client.CoreV1Api(kube_api), crs.ns, pod, message)
    return await crs.wait_done(name, limit=60), pod


async def test_memory_eviction_is_pod_evicted(
    controllers, crs: CustomRuns, kube_api, registry: LocalRegistry, blackhole: str
) -> None:
    await controllers()
    message = pressure_message("memory", "100Mi", "-3Mi", "1Gi", "256Mi")
    run, pod = await evict_while_running(crs, kube_api, registry, blackhole, "memevict-1", message)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PodEvicted"), c
    assert pod in c["message"] and "low on resource: memory" in c["message"], c
    assert "eviction" not in run["status"].get("extraFields", {}), "a memory eviction has no storage figures"


async def test_node_pressure_eviction_keeps_negative_available(
    controllers, crs: CustomRuns, kube_api, registry: LocalRegistry, blackhole: str
) -> None:
    await controllers(MODELPUSH_RETRY_ON_EVICTION="false")
    # past its threshold the node reports a negative figure
    message = pressure_message("ephemeral-storage", "25Mi", "-1024Ki", "70312Ki", "10Mi")
    run, _ = await evict_while_running(crs, kube_api, registry, blackhole, "nodepressure-1", message)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "EphemeralStorageExhausted"), c
    ev = run["status"]["extraFields"]["eviction"]
    assert (ev["threshold"], ev["available"], ev["usage"]) == ("25Mi", "-1Mi", "70312Ki"), ev
    assert "available -1Mi" in c["message"] and "ephemeral-storage" in c["message"], c["message"]


async def test_missing_source_is_final_push_failed(
    controllers, crs: CustomRuns, registry: LocalRegistry, namespace
) -> None:
    await controllers()
    source = f"{registry.host}/{namespace}/never-pushed:v1"
    await crs.create(
        "nosource-1", {"source": f"docker://{source}", "image": f"{registry.host}/{namespace}/c:1"}
    )
    run = await crs.wait_done("nosource-1", limit=90)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PushFailed"), c
    assert f"{namespace}/never-pushed" in c["message"] and "not found" in c["message"].lower(), c["message"]
    assert not run["status"].get("retriesStatus")


async def test_pod_deadline_exceeded_names_the_kubelet_cause(
    controllers, crs: CustomRuns, registry: LocalRegistry, blackhole: str
) -> None:
    """The controller's own timer normally fires first; when it is down, the pod's activeDeadlineSeconds
    (which the controller sets to the attempt's remaining time) ends the pod and its message is kept."""
    first = await controllers()
    await crs.create("deadline-1", stuck_copy(blackhole, registry), timeout="15s")

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


async def test_resource_quota_rejection(controllers, crs: CustomRuns, kube_api, make_pvc, namespace) -> None:
    await controllers()
    await make_pvc(namespace, "model")
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "storage-cap"}, "spec": {"hard": {"limits.ephemeral-storage": "1Gi"}}},
    )

    async def quota_counted() -> bool:  # admission refuses every pod until the quota controller filled status
        q = await core.read_namespaced_resource_quota("storage-cap", namespace)
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
