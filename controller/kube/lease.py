"""Lease-based leader election (coordination.k8s.io/v1), the client-go algorithm in small.

Expiry is judged by how long *we* have watched the record stay unchanged (not by comparing the holder's
renewTime with our clock), so clock skew between replicas does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.kube.client import ApiError, KubeClient

log = logging.getLogger("controller.kube.lease")


def _micro(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_change: Callable[[bool], None],
    ) -> None:
        self._client = client
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._name = name
        self.identity = identity
        self._duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry = retry_period
        self._on_change = on_change
        self.is_leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime)
        self._observed_at = 0.0
        self._last_renew = 0.0

    def _set(self, leader: bool) -> None:
        if leader != self.is_leader:
            self.is_leader = leader
            log.info(
                "Became leader" if leader else "Lost leadership",
                extra={"fields": {"identity": self.identity, "lease": self._name}},
            )
            self._on_change(leader)

    def _spec(self, now: datetime, transitions: int, acquire: str | None) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self._duration),
            "acquireTime": acquire or _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self._client.request("GET", f"{self._path}/{self._name}")
        except ApiError as err:
            if not err.not_found:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self._name},
                "spec": self._spec(now, 0, None),
            }
            try:
                await self._client.request("POST", self._path, body=body)
            except ApiError as err2:
                if err2.conflict:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""))
        mono = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, mono
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        expired = mono - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquire = spec.get("acquireTime") if holder == self.identity else None
        lease["spec"] = self._spec(now, transitions, acquire)
        try:
            await self._client.request("PUT", f"{self._path}/{self._name}", body=lease)
        except ApiError as err:
            if err.conflict:
                return False
            raise
        return True

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            # whatever ends the loop (a bug, cancellation): stop acting as leader before anyone else can
            self._set(False)

    async def _loop(self) -> None:
        while True:
            try:
                ok = await self.try_acquire_or_renew()
                if ok:
                    self._last_renew = time.monotonic()
                    self._set(True)
                elif self.is_leader:
                    self._set(False)
            except ApiError as err:
                log.warning("Lease update failed", extra={"fields": {"error": str(err)}})
                if self.is_leader and time.monotonic() - self._last_renew > self._renew_deadline:
                    self._set(False)
            await asyncio.sleep(self._retry)

    async def release(self) -> None:
        """Hand the lease back on shutdown so a standby takes over at once (run() has already stopped acting
        as leader by then, so the record, not `is_leader`, says whether the lease is ours)."""
        try:
            lease = await self._client.request("GET", f"{self._path}/{self._name}")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self._client.request("PUT", f"{self._path}/{self._name}", body=lease)
        except ApiError as err:
            log.warning("Lease release failed", extra={"fields": {"error": str(err)}})
        self._set(False)
