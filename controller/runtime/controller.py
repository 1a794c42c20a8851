"""Wires informers, the work queue, workers, leader election and the health server into one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from controller.kube.api import POD_SELECTOR, Api, customruns_path, pods_path
from controller.kube.client import KubeClient
from controller.kube.informer import Informer
from controller.kube.lease import LeaderElector
from controller.model.customrun import raw_is_ours
from controller.obs.metrics import Metrics
from controller.obs.server import HealthServer
from controller.runtime.queue import ShutDown, WorkQueue
from controller.runtime.reconciler import Reconciler
from controller.settings import Settings

log = logging.getLogger("controller")


class Controller:
    def __init__(self, settings: Settings, client: KubeClient, metrics: Metrics) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.api = Api(client)
        self.queue = WorkQueue(on_depth=metrics.queue_depth.set)
        namespaces: list[str | None] = list(settings.namespaces) or [None]
        self.run_informers = [
            Informer(
                client,
                customruns_path(ns),
                self._on_run,
                watch_timeout=settings.watch_timeout_seconds,
                name=f"customruns/{ns or '*'}",
            )
            for ns in namespaces
        ]
        self.pod_informers = [
            Informer(
                client,
                pods_path(ns),
                self._on_pod,
                label_selector=POD_SELECTOR,
                watch_timeout=settings.watch_timeout_seconds,
                name=f"pods/{ns or '*'}",
            )
            for ns in namespaces
        ]
        self.runs = _Union(self.run_informers)
        self.pods = _Union(self.pod_informers)
        self.reconciler = Reconciler(self.api, self.runs, self.pods, settings, metrics)  # type: ignore[arg-type]
        self.leading = asyncio.Event()
        if not settings.leader_election:
            self.leading.set()
        self.elector: LeaderElector | None = None
        if settings.leader_election:
            self.elector = LeaderElector(
                client,
                settings.lease_namespace,
                settings.lease_name,
                settings.identity,
                settings.lease_duration_seconds,
                settings.renew_deadline_seconds,
                settings.retry_period_seconds,
                self._on_leader,
            )
        metrics.leader.set(0 if settings.leader_election else 1)
        self.server = HealthServer(metrics, self.ready, settings.metrics_host, settings.metrics_port)
        self._tasks: list[asyncio.Task[Any]] = []

    def ready(self) -> bool:
        return all(i.synced.is_set() for i in self.run_informers + self.pod_informers)

    # event handlers: enqueue keys only; reconcile reads the caches
    def _on_run(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED" or raw_is_ours(obj):
            # a run without a condition was never reconciled: its pod goes ahead of our own writes' echoes
            first = kind != "DELETED" and not ((obj.get("status") or {}).get("conditions"))
            self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}", first=first)

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "CustomRun"), None)
        if owner:
            finished = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            self.queue.add(f"{meta.get('namespace')}/{owner.get('name')}", urgent=finished)
        active = sum(
            1
            for inf in self.pod_informers
            for p in inf.cache.values()
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
        self.metrics.active_pods.set(active)

    def _on_leader(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        if leader:
            self.leading.set()
            self._enqueue_all()
        else:
            self.leading.clear()

    def _enqueue_all(self) -> None:
        for inf in self.run_informers:
            for (ns, name), obj in list(inf.cache.items()):
                if raw_is_ours(obj):
                    self.queue.add(f"{ns}/{name}", first=not (obj.get("status") or {}).get("conditions"))

    async def _worker(self, first_before_urgent: bool = False) -> None:
        # As controller-runtime's WaitForCacheSync: a reconcile that ran on a run before the pod cache was
        # listed would see no pod (after a restart: time a run out without deleting its pod, or lose the
        # kubelet's reason).
        await asyncio.gather(*(i.synced.wait() for i in self.run_informers + self.pod_informers))
        while True:
            try:
                key = await self.queue.get(first_before_urgent)
            except ShutDown:
                return
            try:
                if not self.leading.is_set():
                    continue  # standby: the new leader's full resync picks the key up
                start = time.monotonic()
                try:
                    requeue = await self.reconciler.reconcile(key)
                except Exception as err:  # one bad key must not stop the worker
                    self.metrics.reconcile.labels(result="error").inc()
                    self.metrics.reconcile_errors.inc()
                    delay = self.queue.add_rate_limited(key)
                    log.warning(
                        "Reconcile failed",
                        extra={
                            "fields": {
                                "key": key,
                                "error": f"{type(err).__name__}: {err}",
                                "retry_in": round(delay, 2),
                            }
                        },
                    )
                    continue
                finally:
                    self.metrics.reconcile_time.observe(time.monotonic() - start)
                self.queue.forget(key)
                if requeue is not None:
                    self.metrics.reconcile.labels(result="requeue_after").inc()
                    self.queue.add_after(key, max(requeue, 0.0) + (0.05 if requeue > 0 else 0.0))
                else:
                    self.metrics.reconcile.labels(result="success").inc()
            finally:
                self.queue.done(key)

    async def _resync(self) -> None:
        # level-triggered safety net: look at every run now and then even without events
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            if self.leading.is_set():
                self._enqueue_all()

    async def supervise(self) -> str:
        """Waits until a root task (informer, worker, resync, elector, health server) ends, which none does
        while the process is healthy, and says which one and why: the caller then exits non-zero so the
        Deployment restarts the process (kopf's run_tasks does the same)."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = next(iter(done))
        if task.cancelled():
            return f"{task.get_name()} was cancelled"
        exc = task.exception()
        return f"{task.get_name()} failed: {type(exc).__name__}: {exc}" if exc else f"{task.get_name()} ended"

    async def _serve_health(self) -> None:
        # binding inside the root task: a port already taken ends it like any later failure, so the
        # supervisor names it and the process exits non-zero with the reason in its log
        await self.server.start()
        log.info("Started health server", extra={"fields": {"port": self.server.port}})
        await self.server.serve()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._serve_health(), name="health server"))
        for inf in self.run_informers + self.pod_informers:
            self._tasks.append(asyncio.create_task(inf.run(), name=f"informer {inf.name}"))
        for i in range(self.settings.max_concurrent_reconciles):
            # one worker in four serves new runs before finished pods (see WorkQueue.get): pods keep being
            # made during a wave of finishing ones, whose status writes keep most of the workers
            worker = self._worker(first_before_urgent=i % 4 == 3)
            self._tasks.append(asyncio.create_task(worker, name=f"worker {i}"))
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self.elector.run(), name="leader election"))

    async def stop(self, grace: float = 10.0) -> None:
        """Let in-flight reconciles finish (bounded), then stop watching and hand the lease back."""
        await self.queue.shutdown()
        workers = [t for t in self._tasks if t.get_name().startswith("worker")]
        if workers:
            await asyncio.wait(workers, timeout=grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.elector is not None:
            await self.elector.release()
        await self.server.stop()


class _Union:
    """Looks objects up across per-namespace informers (one informer when watching all namespaces)."""

    def __init__(self, informers: list[Informer]) -> None:
        self._informers = informers

    def _pick(self, namespace: str) -> Informer:
        if len(self._informers) == 1:
            return self._informers[0]
        for inf in self._informers:
            if f"/namespaces/{namespace}/" in inf._path:
                return inf
        return self._informers[0]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._pick(namespace).get(namespace, name)

    def update(self, obj: dict[str, Any]) -> None:
        self._pick((obj.get("metadata") or {}).get("namespace", "")).update(obj)

    def forget(self, namespace: str, name: str) -> None:
        self._pick(namespace).forget(namespace, name)
