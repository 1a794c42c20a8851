"""The node agent's main loop: keep Nodes registered, run pods bound to them, bind PVCs, evict on disk use."""

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from controller.model.quantity import parse_quantity
from hack.nodeagent.config import AgentConfig, NodeConfig
from hack.nodeagent.du import disk_usage
from hack.nodeagent.eviction import PodUsage, limit_eviction, node_capacity, node_pressure_eviction
from hack.nodeagent.kube import as_dict, status_code
from hack.nodeagent.nodes import NodeRegistrar
from hack.nodeagent.pvbinder import PVBinder
from hack.nodeagent.runner import PodRunner

log = logging.getLogger("nodeagent")
SYNC_SECONDS = 0.5
# Disk use is sampled at least this often; faster than the kubelet's ~10s housekeeping so that short test
# pods are caught, backing off to 4x the time a measurement takes when trees get large.
EVICTION_SECONDS = 0.25
PVC_SECONDS = 1.0


class Agent:
    def __init__(
        self, api: client.ApiClient, cfg: AgentConfig, state_dir: Path, bind_pvcs: bool = True
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.nodes: dict[str, NodeConfig] = {n.name: n for n in cfg.nodes}
        self.state_dir = state_dir
        self.runners: dict[str, PodRunner] = {}  # by pod uid
        self.deleting: dict[str, asyncio.Task[None]] = {}
        self.binder = PVBinder(api, state_dir) if bind_pvcs else None
        self.stop = asyncio.Event()

    async def run(self) -> None:
        regs = [NodeRegistrar(self.api, n) for n in self.nodes.values()]
        for r in regs:
            await r.register()
        tasks = [asyncio.create_task(r.run(self.stop)) for r in regs]
        tasks.append(asyncio.create_task(self._loop("pods", SYNC_SECONDS, self.sync_pods)))
        tasks.append(asyncio.create_task(self._loop("eviction", EVICTION_SECONDS, self.check_eviction)))
        if self.binder:
            tasks.append(asyncio.create_task(self._loop("pvcs", PVC_SECONDS, self.binder.sync)))
        try:
            await self.stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await self.shutdown()

    async def _loop(self, what: str, every: float, fn: Any) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            t0 = loop.time()
            try:
                await fn()
            except Exception as e:  # one bad object or a transient API error must not stop the node
                log.warning("sync failed", extra={"loop": what, "error": repr(e)[:500]}, exc_info=True)
            await asyncio.sleep(max(every, 4 * (loop.time() - t0)))

    async def shutdown(self) -> None:
        """Agent stopping: kill every container (no pod outlives its node agent's processes)."""
        for r in self.runners.values():
            if r.task and not r.task.done():
                r.task.cancel()
        for r in list(self.runners.values()):
            if r.task:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await r.task

    # -- pods --------------------------------------------------------------------------------------
    async def sync_pods(self) -> None:
        seen: set[str] = set()
        # One list per tick for all our nodes (field selectors cannot OR node names); cheap at test scale.
        pods = await as_dict(self.core.list_pod_for_all_namespaces(_preload_content=False))
        for pod in pods["items"]:
            if pod.get("spec", {}).get("nodeName") in self.nodes:
                seen.add(pod["metadata"]["uid"])
                self._sync_pod(pod)
        for uid in list(self.runners):
            if uid not in seen:  # force-deleted or gone: nothing to report to, just stop and clean up
                r = self.runners.pop(uid)
                if r.task and not r.task.done():
                    r.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await r.task
                r.remove()

    def _sync_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        phase = (pod.get("status") or {}).get("phase")
        r = self.runners.get(uid)
        if (
            r is None
            and phase not in ("Succeeded", "Failed")
            and not pod["metadata"].get("deletionTimestamp")
        ):
            r = PodRunner(self.api, pod, self.state_dir)
            self.runners[uid] = r
            if phase == "Running":
                r.start_lost()
                log.info("pod lost by a previous agent", extra={"pod": r.key, "node": r.node})
            else:
                r.start()
                log.info("pod admitted", extra={"pod": r.key, "node": r.node})
        if pod["metadata"].get("deletionTimestamp") and uid not in self.deleting:
            self.deleting[uid] = asyncio.create_task(self._delete(pod, r))

    async def _delete(self, pod: dict[str, Any], r: PodRunner | None) -> None:
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if r is not None:
            await r.terminate(float(grace))
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            await self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], body=body, _preload_content=False
            )
            log.info("pod deleted", extra={"pod": f"{meta['namespace']}/{meta['name']}"})
        except client.ApiException as e:
            if status_code(e) not in (404, 409):
                log.warning("pod delete failed", extra={"pod": meta["name"], "error": e.reason})
                self.deleting.pop(meta["uid"], None)  # retried on the next sync

    # -- eviction ----------------------------------------------------------------------------------
    async def check_eviction(self) -> None:
        running = [r for r in self.runners.values() if r.running and r.final is None]
        if not running:
            return
        usages = await asyncio.to_thread(self._measure, running)
        by_node: dict[str, list[tuple[PodRunner, PodUsage]]] = {}
        for r, u in zip(running, usages, strict=True):
            msg = limit_eviction(u)
            if msg:
                r.evict(msg)
                continue
            by_node.setdefault(r.node, []).append((r, u))
        for node, items in by_node.items():
            alloc = parse_quantity(self.nodes[node].ephemeral)
            hit = node_pressure_eviction([u for _, u in items], node_capacity(alloc), alloc)
            if hit:
                key, msg = hit
                next(r for r, u in items if u.key == key).evict(msg)

    @staticmethod
    def _measure(runners: list[PodRunner]) -> list[PodUsage]:
        out = []
        for r in runners:
            cpaths, vols = r.usage_paths()
            cb = {n: disk_usage(ps) for n, ps in cpaths.items()}
            vb = {n: disk_usage([p]) for n, (p, _) in vols.items()}
            out.append(r.usage(cb, vb))
        return out


async def run_agent(kubeconfig: str, cfg: AgentConfig, state_dir: Path, bind_pvcs: bool = True) -> None:
    from hack.nodeagent.kube import api_client

    api = await api_client(kubeconfig)
    agent = Agent(api, cfg, state_dir, bind_pvcs)
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop.set)
    t0 = time.monotonic()
    log.info("node agent starting", extra={"nodes": list(agent.nodes), "state_dir": str(state_dir)})
    try:
        await agent.run()
    finally:
        await api.close()
        log.info("node agent stopped", extra={"uptime_s": round(time.monotonic() - t0, 1)})
