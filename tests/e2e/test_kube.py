"""controller/kube on the real API server: watch expiry (410), informer cache, status merge patch, 409."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest

from controller.kube.api import Api, customruns_path
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import Informer
from tests.fixtures.cluster import wait_for

pytestmark = pytest.mark.cluster
# Tekton's webhook (in-cluster) defaults a condition without lastTransitionTime to null, which the CRD's
# schema then refuses (422): the controller always writes one, and so do these patches.
T0 = "2026-01-01T00:00:00Z"


def _run(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": name},
        "spec": {"customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"}},
    }


async def test_informer_relists_on_expired_watch_and_sees_changes(real_cluster, real_namespace) -> None:
    client = await KubeClient.create(str(real_cluster.kubeconfig))
    seen: list[tuple[str, str]] = []
    path = customruns_path(real_namespace)
    inf = Informer(
        client, path, lambda kind, obj: seen.append((kind, obj["metadata"]["name"])), watch_timeout=5
    )
    task: asyncio.Task | None = None
    try:
        # compact etcd (the API server does this every few minutes): resourceVersion 1 is then gone for
        # good, and a watch from it is answered with 410 Gone whether or not the watch cache serves it
        await _compact_etcd(real_cluster.local.etcd_url)
        inf._rv = "1"
        with pytest.raises(ApiError) as err:
            await inf._watch_once()
        assert err.value.gone
        task = asyncio.create_task(inf.run())
        await asyncio.wait_for(inf.synced.wait(), 30)
        await client.request("POST", path, body=_run("r1"))

        async def added() -> bool:
            return ("ADDED", "r1") in seen

        await wait_for(added, 30, "ADDED r1 via watch")
        assert inf.get(real_namespace, "r1") is not None
        await client.request("DELETE", f"{path}/r1")

        async def deleted() -> bool:
            return ("DELETED", "r1") in seen

        await wait_for(deleted, 30, "DELETED r1 via watch")
        assert inf.get(real_namespace, "r1") is None
    finally:
        if task is not None:  # also when an assertion failed: no watch outlives the test
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def _compact_etcd(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/v3/kv/range", json={"key": base64.b64encode(b"/").decode()}) as r:
            revision = int((await r.json())["header"]["revision"])
        async with s.post(f"{url}/v3/kv/compaction", json={"revision": revision, "physical": True}) as r:
            assert r.status == 200, await r.text()


async def test_status_merge_patch_and_conflict(real_cluster, real_namespace) -> None:
    client = await KubeClient.create(str(real_cluster.kubeconfig))
    api = Api(client)
    path = customruns_path(real_namespace)
    try:
        created = await client.request("POST", path, body=_run("r2"))
        rv = created["metadata"]["resourceVersion"]
        status = {
            "conditions": [
                {"type": "Succeeded", "status": "Unknown", "reason": "Started", "lastTransitionTime": T0}
            ],
            "extraFields": {"a": 1},
        }
        updated = await api.patch_customrun_status(
            real_namespace, "r2", {"metadata": {"resourceVersion": rv}, "status": status}
        )
        assert updated["status"]["conditions"][0]["reason"] == "Started"
        assert updated["status"]["extraFields"] == {"a": 1}
        # a write based on the old version is refused: the reconciler re-reads and recomputes
        with pytest.raises(ApiError) as err:
            await api.patch_customrun_status(
                real_namespace,
                "r2",
                {"metadata": {"resourceVersion": rv}, "status": {"extraFields": {"a": 2}}},
            )
        assert err.value.conflict
        # merge patch: null removes a key, arrays are replaced whole
        rv2 = updated["metadata"]["resourceVersion"]
        patch = {
            "conditions": [
                {"type": "Succeeded", "status": "True", "reason": "Succeeded", "lastTransitionTime": T0}
            ],
            "extraFields": {"a": None},
        }
        final = await api.patch_customrun_status(
            real_namespace, "r2", {"metadata": {"resourceVersion": rv2}, "status": patch}
        )
        assert final["status"]["conditions"] == patch["conditions"]
        assert "a" not in (final["status"].get("extraFields") or {})
        # spec is untouched by the status subresource
        assert final["spec"] == created["spec"]
    finally:
        await client.close()
