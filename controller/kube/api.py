"""The API calls the controller makes, by resource. Every verb used here is listed in config/rbac."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.kube.client import MERGE_PATCH, ApiError, KubeClient
from controller.logic.naming import MANAGED_BY, MANAGER

CUSTOMRUNS = "/apis/tekton.dev/v1beta1"
_event_seq = itertools.count()


def customruns_path(namespace: str | None = None) -> str:
    return f"{CUSTOMRUNS}/namespaces/{namespace}/customruns" if namespace else f"{CUSTOMRUNS}/customruns"


def pods_path(namespace: str | None = None) -> str:
    return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"


POD_SELECTOR = f"{MANAGED_BY}={MANAGER}"
# A burst of runs in one namespace reads its ServiceAccount once per this many seconds instead of once per
# run: that GET sat on every first reconcile's path to its pod (bench/controller_bench.py). A Secret newly
# linked to the ServiceAccount is seen this much later at most.
SERVICE_ACCOUNT_TTL_SECONDS = 2.0


class Api:
    def __init__(self, client: KubeClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._clock = clock
        self._service_accounts: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    # CustomRuns (get, list, watch, patch status)
    async def get_customrun(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.client.request("GET", f"{customruns_path(namespace)}/{name}")

    async def patch_customrun_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """RFC 7386 merge patch on /status; `patch` carries metadata.resourceVersion: stale writes get 409."""
        return await self.client.request(
            "PATCH", f"{customruns_path(namespace)}/{name}/status", body=patch, content_type=MERGE_PATCH
        )

    # Pods (get, list, watch, create, delete; pods/log get)
    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.request("GET", f"{pods_path(namespace)}/{name}")
        except ApiError as err:
            if err.not_found:
                return None
            raise

    async def pod_log_tail(self, namespace: str, name: str, container: str, lines: int = 20) -> str:
        """The last lines of a container's log (pods/log, get), bounded in bytes: progress is a short line."""
        return await self.client.get_text(
            f"{pods_path(namespace)}/{name}/log",
            {"container": container, "tailLines": lines, "limitBytes": 16384},
            request_timeout=10.0,
        )

    async def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return await self.client.request("POST", pods_path(manifest["metadata"]["namespace"]), body=manifest)

    async def delete_pod(self, namespace: str, name: str) -> None:
        try:
            await self.client.request(
                "DELETE", f"{pods_path(namespace)}/{name}", body={"propagationPolicy": "Background"}
            )
        except ApiError as err:
            if not err.not_found:
                raise

    # facts for planning (get only)
    async def get_pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_optional(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")

    async def get_pv(self, name: str) -> dict[str, Any] | None:
        return await self._get_optional(f"/api/v1/persistentvolumes/{name}")

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_optional(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    async def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Read-only for callers: the same object may be handed to several reconciles."""
        now = self._clock()
        cached = self._service_accounts.get((namespace, name))
        if cached is not None and cached[0] > now:
            return cached[1]
        obj = await self._get_optional(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
        if len(self._service_accounts) > 1000:  # many namespaces: drop the expired ones
            self._service_accounts = {k: v for k, v in self._service_accounts.items() if v[0] > now}
        self._service_accounts[(namespace, name)] = (now + SERVICE_ACCOUNT_TTL_SECONDS, obj)
        return obj

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_optional(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    async def get_defaults(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_optional(
            f"/apis/modelpush.dev/v1alpha1/namespaces/{namespace}/modelimagepushes/{name}"
        )

    async def _get_optional(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.client.request("GET", path)
        except ApiError as err:
            if err.not_found:
                return None
            raise

    # Events (create)
    async def create_event(
        self, run: dict[str, Any], kind: str, reason: str, message: str, component: str
    ) -> None:
        meta = run["metadata"]
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name'][:200]}.{int(now.timestamp() * 1e6):x}{next(_event_seq)}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": run.get("apiVersion", "tekton.dev/v1beta1"),
                "kind": run.get("kind", "CustomRun"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self.client.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body)
