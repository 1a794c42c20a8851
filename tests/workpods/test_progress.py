"""Live progress (issue 10, point 9) on real nodes: while a push runs, status.extraFields.progress shows
bytes done and total, percent, MiB/s and ETA, which the controller reads from the work pod's log through the
API server and the real kubelet (pods/log).

The work pod (the project image, from the Containerfile) pushes through a rate-limited TCP relay
(tests/push/faultproxy.py) to the real registry, so that the push lasts long enough to be seen. Pods reach
only the pod bridge's gateway, so the relay listens on the gateway address, as the registry does. A
controller without progress fails this test at the `shows_progress` wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.images import ensure
from tests.e2e.conftest import CustomRuns, cond, results, skopeo_digest
from tests.fixtures.cluster import RealCluster, wait_for
from tests.push.faultproxy import FaultProxy
from tests.workpods.support import host_controller, write_model

pytestmark = pytest.mark.cluster
RATE = 1536 * 1024  # bytes/s through the relay, all connections together: the 36 MiB push lasts ~24 s
FILE = 12 * 1024 * 1024
WS = [{"name": "model", "persistentVolumeClaim": {"claimName": "model"}}]


@pytest.fixture
async def slow_registry(real_cluster: RealCluster) -> AsyncIterator[str]:
    gateway, port = real_cluster.registry.rsplit(":", 1)
    # listens on the registry's own address: the bridge gateway, the only host address pods reach
    relay = FaultProxy(int(port), rate=RATE, listen=gateway, upstream_host=gateway)
    await relay.start()
    try:
        yield relay.host
    finally:
        await relay.stop()


async def test_progress_of_a_running_push(
    real_cluster: RealCluster,
    real_api: client.ApiClient,
    real_namespace: str,
    slow_registry: str,
    tmp_path: Path,
) -> None:
    images = ensure(["model-image-push", "step"], real_cluster.registry)
    core = client.CoreV1Api(real_api)
    crs = CustomRuns(real_api, real_namespace)
    await write_model(core, real_namespace, images["step"].ref, {f"w{i}.bin": FILE for i in range(3)})
    env = {
        "MODELPUSH_PROGRESS_INTERVAL_SECONDS": "1",
        "MODELPUSH_INSECURE_REGISTRIES": f"{real_cluster.registry},{slow_registry}",
    }
    work_image = images["model-image-push"].ref
    async with host_controller(real_cluster, real_namespace, work_image, tmp_path / "ctl.log", **env):
        image = f"{slow_registry}/{real_namespace}/progress:v1"
        await crs.create("prog-1", {"source": "dir:///workspace/model/m", "image": image}, WS)

        def shows_progress(status: dict[str, Any]) -> bool:
            p = (status.get("extraFields") or {}).get("progress") or {}
            return bool(p.get("bytesTotal")) and 0 < (p.get("bytesDone") or 0) < p["bytesTotal"]

        def progress_or_done(status: dict[str, Any]) -> bool:
            conds = status.get("conditions") or [{}]
            return shows_progress(status) or conds[0].get("status") in ("True", "False")

        run = await crs.wait_status("prog-1", progress_or_done, limit=180)
        assert shows_progress(run["status"]), f"the run ended without showing progress: {run['status']}"
        progress = run["status"]["extraFields"]["progress"]
        print(f"progress seen: {progress}; condition: {cond(run)['message']}")
        assert progress["bytesTotal"] >= 3 * FILE
        assert 0 < progress["percent"] < 100 and progress["mibPerSecond"] > 0
        assert progress["etaSeconds"] is not None
        assert progress["updatedAt"].endswith("Z")
        assert "% of" in cond(run)["message"] and "MiB/s" in cond(run)["message"], cond(run)

        async def later_progress() -> dict[str, Any] | None:  # updated again while the push goes on
            now = await crs.get("prog-1")
            p = (now.get("status") or {}).get("extraFields", {}).get("progress") or {}
            moved = p.get("bytesDone", 0) > progress["bytesDone"] and p["updatedAt"] != progress["updatedAt"]
            done = cond(now)["status"] != "Unknown"
            return now if moved or done else None

        again = await wait_for(later_progress, 120, "a newer progress update")
        if cond(again)["status"] == "Unknown":
            assert again["status"]["extraFields"]["progress"]["bytesDone"] > progress["bytesDone"]
        done = await crs.wait_done("prog-1", limit=300)
    assert (cond(done)["status"], cond(done)["reason"]) == ("True", "Succeeded"), cond(done)
    assert "progress" not in done["status"]["extraFields"]  # a finished run shows its totals instead
    direct = f"{real_cluster.registry}/{real_namespace}/progress:v1"
    assert await skopeo_digest(direct) == results(done)["IMAGE_DIGEST"]
