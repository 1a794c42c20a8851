"""API behaviours the controller depends on, checked on the real-node cluster: garbage collection of an
owned pod that runs in a real container, Tekton's real CustomRun CRD (with Tekton's webhook in front of it)
taking merge patches on its status subresource and refusing stale updates, and watches across an etcd
compaction."""

import asyncio
import json
import urllib.request
from typing import Any

from kubernetes_asyncio import client

from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import wait_for, wait_for_pod_phase

MERGE = "application/merge-patch+json"
GROUP, VERSION, PLURAL = "tekton.dev", "v1beta1", "customruns"


async def test_deleting_owner_garbage_collects_its_pods(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    namespace = real_namespace
    owner = await core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    spec = bash_pod(
        real_cluster,
        "child",
        "exec sleep 300",
        metadata={"ownerReferences": [ref]},
        terminationGracePeriodSeconds=1,
    )
    await core.create_namespaced_pod(namespace, spec)
    await wait_for_pod_phase(core, namespace, "child", "Running")

    await core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    async def gone() -> bool:
        pods = await core.list_namespaced_pod(namespace)
        return not pods.items

    await wait_for(gone, 90, "garbage collection of the owned pod")


def customrun(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CustomRun",
        "metadata": {"name": name},
        "spec": {
            "customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"},
            "params": [
                {"name": "image", "value": "127.0.0.1:5000/m:1"},
                {"name": "files", "value": ["a", "b"]},
            ],
            "timeout": "1h",
        },
    }


async def test_customrun_status_merge_patch_through_status_subresource(tekton, real_api, real_namespace):
    crd = client.CustomObjectsApi(real_api)
    namespace = real_namespace
    created = await crd.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, customrun("cr"))
    assert created["metadata"]["generation"] == 1
    status = {
        "status": {
            # Tekton's CRD schema wants lastTransitionTime as a string (null is refused with 422)
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "Unknown",
                    "reason": "Pushing",
                    "message": "1/2",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "startTime": "2026-01-01T00:00:00Z",
            "extraFields": {"attempt": 1, "progress": {"bytes": 10}},
        }
    }

    await crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "cr", status, _content_type=MERGE
    )
    results = {"status": {"results": [{"name": "IMAGE_DIGEST", "value": "sha256:" + "a" * 64}]}}
    got = await crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "cr", results, _content_type=MERGE
    )

    # Merge patch: the second patch kept the first one's fields and added results.
    assert got["status"]["conditions"][0]["reason"] == "Pushing"
    assert got["status"]["extraFields"] == {"attempt": 1, "progress": {"bytes": 10}}
    assert got["status"]["results"][0]["name"] == "IMAGE_DIGEST"
    assert got["metadata"]["generation"] == 1  # status writes do not bump the generation
    # Params keep their free-form values (x-kubernetes-preserve-unknown-fields).
    assert got["spec"]["params"][1]["value"] == ["a", "b"]

    # A spec change through the main resource does not touch status, even if the patch carries one.
    spec_patch = {"spec": {"timeout": "2h", "status": "RunCancelled"}, "status": {"conditions": []}}
    after = await crd.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "cr", spec_patch, _content_type=MERGE
    )
    assert after["spec"]["status"] == "RunCancelled"
    assert after["metadata"]["generation"] == 2
    assert after["status"] == got["status"]

    # And the status subresource ignores spec changes.
    sneaky = {"spec": {"timeout": "3h"}, "status": {"observedGeneration": 2}}
    final = await crd.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "cr", sneaky, _content_type=MERGE
    )
    assert final["spec"]["timeout"] == "2h0m0s"  # Tekton's webhook stores Go's duration form of "2h"
    assert final["status"]["observedGeneration"] == 2


async def test_customrun_status_update_with_stale_resource_version_conflicts(
    tekton, real_api, real_namespace
):
    crd = client.CustomObjectsApi(real_api)
    namespace = real_namespace
    created = await crd.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, customrun("cr2"))
    await crd.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "cr2", {"metadata": {"labels": {"x": "y"}}}, _content_type=MERGE
    )
    done = {"type": "Succeeded", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    stale = {**created, "status": {"conditions": [done]}}

    try:
        await crd.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "cr2", stale)
    except client.ApiException as e:
        assert e.status == 409
    else:
        raise AssertionError("a status update with a stale resourceVersion must conflict")


def _etcd(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


async def _watch_once(core: client.CoreV1Api, ns: str, rv: str, seen: set[str], want: str) -> str | None:
    """One watch call from ``rv``; returns None when ``want`` was seen, 'gone' on 410."""
    resp = await core.list_namespaced_config_map(
        ns, watch=True, resource_version=rv, timeout_seconds=20, _preload_content=False
    )
    try:
        async with asyncio.timeout(25):
            while line := await resp.content.readline():
                ev = json.loads(line)
                if ev["type"] == "ERROR":
                    return "gone" if ev["object"].get("code") == 410 else f"error {ev['object']}"
                seen.add(ev["object"]["metadata"]["name"])
                if want in seen:
                    return None
    finally:
        resp.release()
    return "timeout"


async def test_watch_survives_etcd_compaction_with_410_then_relist(real_cluster, real_api, real_namespace):
    """Compacts the shared cluster's etcd to its head revision: what the apiserver does on its own every
    5 minutes, only sooner; every other watcher sees a 410 and relists, as it must anyway."""
    core = client.CoreV1Api(real_api)
    namespace = real_namespace
    listed = await core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version
    for i in range(5):
        await core.create_namespaced_config_map(namespace, {"metadata": {"name": f"before-{i}"}})
    head = _etcd(real_cluster.local.etcd_url, "/v3/kv/range", {"key": "AA=="})["header"]["revision"]
    _etcd(real_cluster.local.etcd_url, "/v3/kv/compaction", {"revision": head, "physical": True})

    seen: set[str] = set()
    outcome = await _watch_once(core, namespace, rv, seen, "after")
    assert outcome == "gone"  # 410: the resourceVersion we held was compacted away

    # The informer recipe: relist, then watch from the list's resourceVersion.
    relisted = await core.list_namespaced_config_map(namespace)
    seen = {c.metadata.name for c in relisted.items}
    assert {f"before-{i}" for i in range(5)} <= seen
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
    assert await _watch_once(core, namespace, relisted.metadata.resource_version, seen, "after") is None
    assert "after" in seen
