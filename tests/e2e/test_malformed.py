"""A CustomRun of ours that the controller cannot read (issue 10) ends False with InvalidCustomRun, a message
naming each bad field (never its value), a Warning Event and no pod. Before, the controller skipped it and
the user saw no status at all.

Tekton's CRD schema types every spec field the controller reads, and its webhook decodes `retriesStatus`, so
on a real cluster what gets through is the schemaless `status.extraFields` (a RawExtension): written by hand
(`kubectl edit --subresource=status`) or by another tool.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.e2e.conftest import GROUP, PLURAL, VERSION, WS, CustomRuns, cond

pytestmark = pytest.mark.cluster


async def _patch_status(crs: CustomRuns, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return await crs.co.patch_namespaced_custom_object_status(
        GROUP, VERSION, crs.ns, PLURAL, name, {"status": status}, _content_type="application/merge-patch+json"
    )


async def test_unreadable_customrun_ends_with_a_reason(controllers, crs: CustomRuns) -> None:
    params = {"source": "dir:///workspace/model", "image": f"127.0.0.1:5000/{crs.ns}/m:v1"}
    await crs.create("odd-extra", params, WS)
    stored = await _patch_status(crs, "odd-extra", {"extraFields": "token=s3cr3t"})
    assert stored["status"]["extraFields"] == "token=s3cr3t"  # Tekton's webhook let it in: only we object
    # not ours: left alone even though it is just as unreadable
    await crs.create("other", {}, [], customRef={"apiVersion": "example.dev/v1", "kind": "Other"})
    await _patch_status(crs, "other", {"extraFields": "token=s3cr3t"})

    await controllers()
    run = await crs.wait_done("odd-extra", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", "InvalidCustomRun"), c
    assert c["message"].startswith(
        "The CustomRun cannot be read: status.extraFields: Input should be a valid dictionary"
    )
    assert "Create a corrected CustomRun" in c["message"], c
    assert "s3cr3t" not in c["message"]  # values are never echoed
    assert run["status"]["startTime"] and run["status"]["completionTime"]

    assert await crs.pods() == []
    events = await crs.events("odd-extra")
    assert any(e["type"] == "Warning" and "InvalidCustomRun" in e["message"] for e in events), events
    assert not (await crs.get("other"))["status"].get("conditions")


async def test_unreadable_run_is_told_apart_from_a_good_one(controllers, crs: CustomRuns, real_api) -> None:
    """The same namespace's valid run goes its own way."""
    core = client.CoreV1Api(real_api)
    await core.create_namespaced_persistent_volume_claim(
        crs.ns,
        {
            "metadata": {"name": "model"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    params = {"source": "dir:///workspace/model", "image": f"127.0.0.1:5000/{crs.ns}/m:v1"}
    await crs.create("odd-extra", params, WS)
    await _patch_status(crs, "odd-extra", {"extraFields": "token=s3cr3t"})
    await crs.create("good", params, WS)
    await controllers()
    assert cond(await crs.wait_done("odd-extra", limit=60))["reason"] == "InvalidCustomRun"
    good = await crs.wait_status("good", lambda s: bool(s.get("conditions")), limit=60)
    assert cond(good)["reason"] != "InvalidCustomRun", cond(good)
    assert [p["metadata"]["name"] for p in await crs.pods()] == ["good-push-1"]
