"""The controller process: leader election between two replicas, health endpoints and metrics."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest

from tests.e2e.conftest import WS, ControllerProcess, CustomRuns, cond, model_pvc
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
LEASE = {
    "MODELPUSH_LEADER_ELECTION": "true",
    "MODELPUSH_LEASE_NAME": "modelpush-test",
    "MODELPUSH_LEASE_DURATION_SECONDS": "4",
    "MODELPUSH_RENEW_DEADLINE_SECONDS": "3",
    "MODELPUSH_RETRY_PERIOD_SECONDS": "0.5",
}


def gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


async def leader_of(ctls: list[ControllerProcess]) -> tuple[ControllerProcess, ControllerProcess]:
    async def one_leader() -> tuple[ControllerProcess, ControllerProcess] | None:
        values = [gauge(await c.metrics(), "modelpush_leader_election_master_status") for c in ctls]
        if sorted(values) == [0.0, 1.0]:
            return (ctls[0], ctls[1]) if values[0] == 1.0 else (ctls[1], ctls[0])
        return None

    return await wait_for(one_leader, 30, "exactly one leader")


async def test_two_controllers_one_leader_and_failover(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace
) -> None:
    a = await controllers(**LEASE, MODELPUSH_IDENTITY="replica-a")
    b = await controllers(**LEASE, MODELPUSH_IDENTITY="replica-b")
    leader, standby = await leader_of([a, b])
    await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/le:v1"
    await crs.create("le-1", {"source": "dir:///workspace/model", "image": image}, WS)
    run = await crs.wait_done("le-1")
    assert cond(run)["reason"] == "Succeeded"
    assert [p["metadata"]["name"] for p in await crs.pods("le-1")] == ["le-1-push-1"]
    assert "Created pod" in leader.logs() and "Created pod" not in standby.logs()
    assert (
        'modelpush_runs_total{mode="build",outcome="succeeded",reason="Succeeded"} 1.0'
        in await leader.metrics()
    )

    leader.kill()  # no lease release: the standby must wait for the lease to lapse
    await crs.create("le-2", {"source": "dir:///workspace/model", "image": image}, WS)
    run2 = await crs.wait_done("le-2", limit=90)
    assert cond(run2)["reason"] == "Succeeded"
    assert gauge(await standby.metrics(), "modelpush_leader_election_master_status") == 1.0
    assert "Became leader" in standby.logs()


async def test_health_endpoints_and_metrics(controllers, crs: CustomRuns) -> None:
    ctl = await controllers()
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/readyz"):
            async with s.get(f"http://127.0.0.1:{ctl.port}{path}") as r:
                assert r.status == 200, path
    await crs.create(
        "m-1", {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "mode": "fast"}
    )
    await crs.create("m-2", {"source": "docker://q.io/a/b:1", "image": "127.0.0.1:1/a/b:1", "colour": "x"})
    await crs.wait_done("m-1", limit=60)
    await crs.wait_done("m-2", limit=60)
    want = 'modelpush_runs_total{mode="unknown",outcome="failed",reason="InvalidParams"} 2.0'

    async def counted() -> str | None:
        # counters move just after the status write the test saw: poll (bounded) instead of racing
        text = await ctl.metrics()
        ok = want in text and re.search(r'^modelpush_reconcile_total\{result="[a-z_]+"\} [1-9]', text, re.M)
        return text if ok else None

    text = await wait_for(counted, 30, "run and reconcile counters")
    assert gauge(text, "modelpush_leader_election_master_status") == 1.0
    assert gauge(text, "modelpush_workqueue_depth") == 0.0
    assert 'modelpush_api_requests_total{code="200",verb="PATCH"}' in text
    assert "modelpush_reconcile_time_seconds_bucket" in text
    assert "modelpush_run_duration_seconds_bucket" in text
    # logs are one JSON object per line with the agreed keys
    lines = [json.loads(line) for line in ctl.logs().splitlines() if line.startswith("{")]
    finished = [x for x in lines if x["msg"] == "Finished run"]
    assert finished and all(
        {"ts", "level", "msg", "namespace", "name", "attempt", "pod", "reason"} <= set(x) for x in finished
    )
