"""Live progress (issue 10, point 9): while a push runs, status.extraFields.progress shows bytes done and
total, percent, MiB/s and ETA, read from the work pod's log (pods/log).

hack/nodeagent runs pods as host processes and serves no pods/log, so on today's cluster this test skips
at the probe below; on real kubelet nodes (tests/fixtures/cluster.py with the real-node topology) it runs.
The push goes through a rate-limited TCP relay to the real registry so that it lasts long enough to be seen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.registry import LocalRegistry
from tests.e2e.conftest import WS, CustomRuns, cond, model_pvc, results, skopeo_digest
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
RATE = 2 * 1024 * 1024  # bytes per second through the relay: a 12 MiB model takes about 6 s


class Relay:
    """Forwards TCP to the registry, client-to-server bytes at most RATE per second (a slow link)."""

    def __init__(self, upstream: str) -> None:
        self.bind, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"{self.bind}:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.bind, 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        ur, uw = await asyncio.open_connection(self.bind, self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(64 * 1024):
                    dst.write(data)
                    await dst.drain()
                    if slow:
                        await asyncio.sleep(len(data) / RATE)
            with contextlib.suppress(Exception):
                dst.close()

        try:
            await asyncio.gather(pump(cr, uw, True), pump(ur, cw, False))
        except asyncio.CancelledError:
            pass
        finally:
            self.tasks.discard(task)


@pytest.fixture
async def slow_registry(registry: LocalRegistry) -> AsyncIterator[str]:
    relay = Relay(registry.host)
    await relay.start()
    try:
        yield relay.host
    finally:
        await relay.stop()


async def _pods_log_served(core: client.CoreV1Api, namespace: str, pod: str) -> bool:
    try:
        await core.read_namespaced_pod_log(pod, namespace, container="push", tail_lines=1)
    except client.ApiException:
        return False
    return True


async def test_progress_of_a_running_push(
    controllers, crs: CustomRuns, kube_api, make_pvc, slow_registry: str, registry, namespace
) -> None:
    core = client.CoreV1Api(kube_api)
    await controllers(
        MODELPUSH_PROGRESS_INTERVAL_SECONDS="1",
        MODELPUSH_INSECURE_REGISTRIES=f"{registry.host},{slow_registry}",
    )
    await model_pvc(make_pvc, namespace, size=4 * 1024 * 1024, files=3)
    image = f"{slow_registry}/{namespace}/progress:v1"
    await crs.create("prog-1", {"source": "dir:///workspace/model", "image": image}, WS)

    async def running_pod() -> str | None:
        pods = await crs.pods("prog-1")
        return next((p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"), None)

    pod = await wait_for(running_pod, 90, "a running work pod")
    if not await _pods_log_served(core, namespace, pod):
        await crs.patch_spec("prog-1", {"status": "RunCancelled"})
        pytest.skip("the cluster's nodes serve no pods/log (hack/nodeagent); runs on real kubelet nodes")

    def shows_progress(status: dict[str, Any]) -> bool:
        p = (status.get("extraFields") or {}).get("progress") or {}
        return bool(p.get("bytesTotal")) and 0 < (p.get("bytesDone") or 0) < p["bytesTotal"]

    run = await crs.wait_status("prog-1", shows_progress, limit=60)
    progress = run["status"]["extraFields"]["progress"]
    assert progress["bytesTotal"] >= 12 * 1024 * 1024
    assert (
        0 < progress["percent"] < 100 and progress["mibPerSecond"] > 0 and progress["etaSeconds"] is not None
    )
    assert progress["updatedAt"].endswith("Z")
    assert "% of" in cond(run)["message"] and "MiB/s" in cond(run)["message"], cond(run)
    done = await crs.wait_done("prog-1", limit=120)
    assert (cond(done)["status"], cond(done)["reason"]) == ("True", "Succeeded"), cond(done)
    assert "progress" not in done["status"]["extraFields"]  # a finished run shows its totals instead
    direct = f"{registry.host}/{namespace}/progress:v1"
    assert await skopeo_digest(direct) == results(done)["IMAGE_DIGEST"]
