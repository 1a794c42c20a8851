"""Supervised background tasks (issue 10, point 5) with the real controller process and the real API server:
a process that cannot run its root tasks exits non-zero and says why in its JSON log, informers that cannot
watch keep retrying with /readyz red until a relist works, and a replica whose Lease is taken stops writing.

tests/unit/controller/test_supervision.py covers what a real API server cannot be made to send: a watch line
that is not JSON, an event that makes a handler raise (Tekton's CustomRun schema refuses a customRef that is
not an object with 422), and a root task or elector that raises from a bug.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.e2e.conftest import ControllerProcess, CustomRuns, cond
from tests.e2e.test_process import LEASE, gauge
from tests.e2e.test_rbac import _ensure_role, _kubeconfig
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
# an unknown param: the run ends InvalidParams without a pod, so only the controller's own writes show
INVALID = {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "x": "1"}


def json_lines(ctl: ControllerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ctl.logs().splitlines() if line.startswith("{")]


async def exit_code(ctl: ControllerProcess, limit: float = 60) -> int:
    async def ended() -> int | None:
        assert ctl.proc is not None
        return ctl.proc.poll()

    return await wait_for(ended, limit, "controller process exit")


async def readyz(ctl: ControllerProcess) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{ctl.port}/readyz") as r:
        return r.status


async def test_taken_metrics_port_ends_the_process_with_the_reason_logged(controllers) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ctl = await controllers(wait=False, MODELPUSH_METRICS_PORT=str(port))
        assert await exit_code(ctl) == 1
    # the health server's root task ended; the supervisor says which and why, in one JSON line
    errors = [x for x in json_lines(ctl) if x["level"] == "error"]
    assert errors and errors[-1]["msg"] == "Stopping controller: a root task ended", ctl.logs()[-2000:]
    assert errors[-1]["error"].startswith("health server failed: OSError")
    assert "address already in use" in errors[-1]["error"].lower()
    assert "Traceback" not in ctl.logs()


async def test_readyz_red_while_the_informers_cannot_list_or_watch_then_green(
    real_cluster, real_api: client.ApiClient, controllers, crs: CustomRuns, real_namespace: str, tmp_path
) -> None:
    """The real failure an informer meets: the API server refuses its watch (here its RoleBinding is
    deleted). The informers keep retrying, /readyz goes red once they relist, and green when that works."""
    core = client.CoreV1Api(real_api)
    rbac = client.RbacAuthorizationV1Api(real_api)
    role = await _ensure_role(rbac)
    await core.create_namespaced_service_account(real_namespace, {"metadata": {"name": "mip-controller"}})
    binding = {
        "metadata": {"name": "mip-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "mip-controller", "namespace": real_namespace}],
    }
    await rbac.create_namespaced_role_binding(real_namespace, binding)
    token = await core.create_namespaced_service_account_token(
        "mip-controller", real_namespace, {"spec": {"expirationSeconds": 3600}}
    )
    kubeconfig = _kubeconfig(
        tmp_path / "sa.kubeconfig", real_cluster.local.server, real_cluster.local.ca_file, token.status.token
    )
    # short watches: each ends after a second and the next one is authorized afresh
    ctl = await controllers(KUBECONFIG=str(kubeconfig), MODELPUSH_WATCH_TIMEOUT_SECONDS="1")

    async def readyz_is(code: int) -> bool:
        return await readyz(ctl) == code

    await rbac.delete_namespaced_role_binding("mip-controller", real_namespace)
    await wait_for(lambda: readyz_is(503), 120, "/readyz red while list and watch are forbidden")
    assert ctl.proc is not None and ctl.proc.poll() is None, ctl.logs()[-3000:]  # retrying, not dead
    assert [x for x in json_lines(ctl) if x["msg"] == "Watch failed" and x["error"].startswith("403")]
    await rbac.create_namespaced_role_binding(real_namespace, binding)
    await wait_for(lambda: readyz_is(200), 120, "/readyz green after the relist")
    await crs.create("after-relist", INVALID)
    assert cond(await crs.wait_done("after-relist", limit=60))["reason"] == "InvalidParams"


async def test_replica_whose_lease_is_taken_stops_writing(
    controllers, crs: CustomRuns, real_api: client.ApiClient, real_namespace: str
) -> None:
    ctl = await controllers(**LEASE, MODELPUSH_IDENTITY="replica-a")

    async def leading(want: float) -> bool:
        return gauge(await ctl.metrics(), "modelpush_leader_election_master_status") == want

    await wait_for(lambda: leading(1.0), 30, "replica-a leads")
    leases = client.CoordinationV1Api(real_api)
    name = LEASE["MODELPUSH_LEASE_NAME"]
    intruder = asyncio.Event()

    async def hold() -> None:
        # another replica (written straight through the API) takes the Lease and renews it, as client-go's
        # elector would after the record had lapsed for it
        while not intruder.is_set():
            lease = await leases.read_namespaced_lease(name, real_namespace)
            lease.spec.holder_identity = "replica-b"
            lease.spec.renew_time = datetime.now(UTC)
            try:
                await leases.replace_namespaced_lease(name, real_namespace, lease)
            except client.ApiException as err:
                if err.status != 409:  # replica-a renewed in between: take it again at once
                    raise
                continue
            await asyncio.sleep(0.5)

    holder = asyncio.create_task(hold())
    try:
        await wait_for(lambda: leading(0.0), 30, "replica-a stops leading")
        assert "Lost leadership" in ctl.logs()
        await crs.create("while-b", INVALID)
        # replica-a sees the run (it keeps watching) but, not leading, writes nothing: several of its
        # retry periods pass with the run untouched
        for _ in range(8):
            await asyncio.sleep(0.5)
            assert not (await crs.get("while-b")).get("status"), "a standby wrote status"
            assert holder.done() is False or holder.exception() is None
        assert not await crs.pods("while-b")
    finally:
        intruder.set()
        await holder
    # replica-b stops renewing: once the record has stood still for a lease duration, replica-a takes over
    # and finishes the run
    await wait_for(lambda: leading(1.0), 60, "replica-a leads again")
    run = await crs.wait_done("while-b", limit=60)
    assert cond(run)["reason"] == "InvalidParams"
    assert ctl.proc is not None and ctl.proc.poll() is None
