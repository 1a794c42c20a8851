"""Cancel, timeout, retries, eviction, admission rejection and controller restarts, end to end."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from kubernetes_asyncio import client

from hack.registry import LocalRegistry
from tests.e2e.conftest import (
    WS,
    CustomRuns,
    cond,
    model_pvc,
    push_dir,
    results,
    skopeo_digest,
    stuck_copy,
    wait_pod_phase,
    write_model,
)
from tests.fixtures.cluster import wait_for
from tests.push.faultproxy import FaultProxy

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
SMALL_NODE = {
    "node-selector": '{"modelpush.dev/node-size": "small"}',
    "tolerations": '[{"key": "modelpush.dev/small", "operator": "Exists", "effect": "NoSchedule"}]',
}


async def test_cancel_while_running(controllers, crs: CustomRuns, gateway_registry, blackhole: str) -> None:
    await controllers()
    await crs.create("cancel-1", stuck_copy(blackhole, gateway_registry))
    await wait_pod_phase(crs, "cancel-1", "Running")
    await crs.patch_spec("cancel-1", {"status": "RunCancelled", "statusMessage": "stopped by the test"})
    run = await crs.wait_done("cancel-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"], c["message"]) == ("False", "CustomRunCancelled", "stopped by the test")
    assert run["status"]["completionTime"]

    async def pod_gone() -> bool:
        pods = await crs.pods("cancel-1")
        return all(p["metadata"].get("deletionTimestamp") for p in pods)

    await wait_for(pod_gone, 60, "pod deleted")


async def test_cancel_after_done_is_ignored(controllers, crs: CustomRuns) -> None:
    first = await controllers()
    await crs.create(
        "done-1", {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "mode": "x"}
    )
    before = await crs.wait_done("done-1", limit=60)
    first.stop()
    await crs.patch_spec("done-1", {"status": "RunCancelled"})
    patched = (await crs.get("done-1"))["metadata"]["resourceVersion"]
    # a fresh controller reconciles every run it lists; done-1 is the only one in this namespace
    second = await controllers()

    async def reconciled() -> bool:
        return await reconciles(second) >= 1

    await wait_for(reconciled, 60, "the new controller's reconcile of done-1")
    after = await crs.get("done-1")
    assert after["metadata"]["resourceVersion"] == patched, "the controller wrote to a finished run"
    assert cond(after) == cond(before) and cond(after)["reason"] == "InvalidParams"


async def reconciles(ctl) -> float:
    """modelpush_reconcile_total summed over results, from the controller's /metrics."""
    text = await ctl.metrics()
    pattern = r"^modelpush_reconcile_total\{[^}]*\} (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


async def test_timeout(controllers, crs: CustomRuns, gateway_registry, blackhole: str) -> None:
    await controllers()
    await crs.create("slow-1", stuck_copy(blackhole, gateway_registry), timeout="4s")
    run = await crs.wait_done("slow-1", limit=90)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "CustomRunTimedOut"), c
    assert "timed out" in c["message"]


async def test_retries_then_success(
    controllers, crs: CustomRuns, gateway_registry, tmp_path, real_namespace
) -> None:
    # attempt 1 copies an image that does not exist yet; the test pushes it while the controller waits
    await controllers(MODELPUSH_RETRY_DELAY_SECONDS="4")
    src = f"{gateway_registry.host}/{real_namespace}/later:v1"
    dst = f"{gateway_registry.host}/{real_namespace}/copied:v1"
    await crs.create("retry-1", {"source": f"docker://{src}", "image": dst}, retries=3)
    await crs.wait_status("retry-1", lambda st: len(st.get("retriesStatus") or []) >= 1, limit=90)
    write_model(tmp_path / "m")
    seeded = await push_dir(tmp_path / "m", src, gateway_registry.host)
    run = await crs.wait_done("retry-1", limit=120)
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    assert results(run)["IMAGE_DIGEST"] == seeded["digest"]
    archived = run["status"]["retriesStatus"]
    assert archived[0]["conditions"][0]["status"] == "False"
    first = archived[0]["conditions"][0]
    assert first["reason"] == "PushFailed", first  # the registry answered: the source is missing
    assert f"{real_namespace}/later" in first["message"] and "not found" in first["message"].lower(), first
    names = sorted(p["metadata"]["name"] for p in await crs.pods("retry-1"))
    assert names[0] == "retry-1-push-1" and len(names) == len(archived) + 1


@asynccontextmanager
async def held_registry(registry: LocalRegistry, gateway: str) -> AsyncIterator[FaultProxy]:
    """A proxy on the gateway in front of `registry` that holds every connection until released: a
    buildah push has staged its layers on the pod's ephemeral storage by the time it first calls the
    registry, and then stays there long enough for the kubelet's eviction manager (it measures every
    10 s) to see it; unheld, the push of a few MiB ends first."""
    gate = FaultProxy(registry.port, listen=gateway, upstream_host=gateway)
    await gate.start()
    gate.hold()
    try:
        yield gate
    finally:
        gate.release()
        await gate.stop()


async def test_eviction_reports_kubelet_figures(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace, gateway
) -> None:
    await model_pvc(real_pvc, real_namespace, size=10 * 1024 * 1024)
    async with held_registry(gateway_registry, gateway) as gate:
        await controllers(MODELPUSH_RETRY_ON_EVICTION="false", MODELPUSH_INSECURE_REGISTRIES=gate.host)
        params = {
            "source": "dir:///workspace/model",
            "image": f"{gate.host}/{real_namespace}/evicted:v1",
            "mode": "buildah",
            "storage": "ephemeral",
            "ephemeral-storage": "2Mi",
            **SMALL_NODE,
        }
        await crs.create("evict-1", params, WS)
        run = await crs.wait_done("evict-1", limit=240)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "EphemeralStorageExhausted"), c
    assert "2Mi" in c["message"] and "ephemeral-storage" in c["message"]
    ev = run["status"]["extraFields"]["eviction"]
    assert ev["node"] == "local-small" and ev["requested"] == "2Mi"
    # the real kubelet's own words (pkg/kubelet/eviction/helpers.go), not a stand-in's
    assert "ephemeral local storage" in ev["message"] and "2Mi" in ev["message"], ev
    assert {"Evicted", "Failed"} <= {e["reason"] for e in await crs.events("evict-1")}


async def test_eviction_retry_with_larger_request_succeeds(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace, gateway
) -> None:
    await model_pvc(real_pvc, real_namespace, size=10 * 1024 * 1024)
    async with held_registry(gateway_registry, gateway) as gate:
        ctl = await controllers(
            MODELPUSH_RETRY_ON_EVICTION="true",
            MODELPUSH_EVICTION_GROWTH="300",
            MODELPUSH_INSECURE_REGISTRIES=gate.host,
        )
        image = f"{gate.host}/{real_namespace}/grown:v1"
        params = {
            "source": "dir:///workspace/model",
            "image": image,
            "mode": "buildah",
            "storage": "ephemeral",
            "ephemeral-storage": "2Mi",
        }
        await crs.create("evict-2", params, WS)
        await crs.wait_status("evict-2", lambda st: len(st.get("retriesStatus") or []) >= 1, limit=240)
        gate.release()  # the second attempt, with the grown request, may push
        run = await crs.wait_done("evict-2", limit=240)
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    archived = run["status"]["retriesStatus"]
    assert len(archived) == 1 and archived[0]["conditions"][0]["reason"] == "EphemeralStorageExhausted"
    pods = {p["metadata"]["name"]: p for p in await crs.pods("evict-2")}
    limit = pods["evict-2-push-2"]["spec"]["containers"][0]["resources"]["limits"]["ephemeral-storage"]
    assert limit == "600Mi"
    pushed = f"{gateway_registry.host}/{real_namespace}/grown:v1"  # the same registry, past the proxy
    assert await skopeo_digest(pushed) == results(run)["IMAGE_DIGEST"]
    assert re.search(r'^modelpush_evictions_total\{mode="buildah"\} 1.0', await ctl.metrics(), re.M)


async def test_limitrange_rejection(controllers, crs: CustomRuns, real_api, real_pvc, real_namespace) -> None:
    await controllers()
    await real_pvc(real_namespace, "model")
    core = client.CoreV1Api(real_api)
    await core.create_namespaced_limit_range(
        real_namespace,
        {
            "metadata": {"name": "cap"},
            "spec": {"limits": [{"type": "Container", "max": {"ephemeral-storage": "1Gi"}}]},
        },
    )
    params = {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "ephemeral-storage": "5Gi"}
    await crs.create("big-1", params, WS, retries=2)
    run = await crs.wait_done("big-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "PodRejected"), c
    assert "ephemeral-storage" in c["message"] and "1Gi" in c["message"]
    assert await crs.pods() == []


async def test_restarted_controller_adopts_pod(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace, gateway
) -> None:
    """The push stalls at a proxy in front of the registry, so the run is provably unfinished when the
    controller is killed; the next controller adopts the pod, and the run finishes once, with one pod."""
    gate = FaultProxy(gateway_registry.port, listen=gateway, upstream_host=gateway)
    await gate.start()
    try:
        gate.hold()
        first = await controllers(MODELPUSH_INSECURE_REGISTRIES=f"{gateway_registry.host},{gate.host}")
        await model_pvc(real_pvc, real_namespace)
        await crs.create(
            "adopt-1",
            {"source": "dir:///workspace/model", "image": f"{gate.host}/{real_namespace}/adopt:v1"},
            WS,
        )

        async def push_waiting() -> bool:
            return gate.held > 0

        await wait_for(push_waiting, 90, "the push waiting at the registry")
        run = await crs.wait_status("adopt-1", lambda st: st["conditions"][0]["reason"] == "Running")
        assert cond(run)["status"] == "Unknown", cond(run)
        first.kill()  # SIGKILL: no cleanup, no lease release
        await controllers(MODELPUSH_INSECURE_REGISTRIES=f"{gateway_registry.host},{gate.host}")
        still = await crs.get("adopt-1")
        assert cond(still)["status"] == "Unknown", cond(still)
        gate.release()
        run = await crs.wait_done("adopt-1", limit=120)
    finally:
        await gate.stop()
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    assert (
        await skopeo_digest(f"{gateway_registry.host}/{real_namespace}/adopt:v1")
        == results(run)["IMAGE_DIGEST"]
    )
    assert [p["metadata"]["name"] for p in await crs.pods("adopt-1")] == ["adopt-1-push-1"]
    events = [e for e in await crs.events("adopt-1") if e["reason"] in ("Started", "Succeeded")]
    assert sorted((e["reason"], e.get("count") or 1) for e in events) == [("Started", 1), ("Succeeded", 1)]


async def test_unpullable_work_image_fails_after_grace(
    controllers, crs: CustomRuns, real_pvc, real_namespace
) -> None:
    await controllers(
        MODELPUSH_WORK_IMAGE="example.com/not-allowed:1", MODELPUSH_IMAGE_PULL_GRACE_SECONDS="3"
    )
    await real_pvc(real_namespace, "model")
    await crs.create("pull-1", {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1"}, WS)
    run = await crs.wait_done("pull-1", limit=90)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "ImagePullFailed"), c
    assert "ErrImagePull" in c["message"]
