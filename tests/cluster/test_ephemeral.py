"""Ephemeral storage: kubelet-style eviction by the node agent, LimitRange and ResourceQuota admission."""

import re

import pytest
from kubernetes_asyncio import client

from tests.cluster.pods import pod
from tests.fixtures.cluster import SMALL_LABEL, SMALL_NODE, wait_for, wait_for_pod_phase

WRITE_AND_WAIT = "open('blob', 'wb').write(b'x' * {mib} * 2**20); import time; time.sleep(120)"
SMALL = {
    "nodeSelector": {SMALL_LABEL[0]: SMALL_LABEL[1]},
    "tolerations": [
        {"key": "modelpush.dev/small", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ],
}


async def test_write_past_ephemeral_limit_is_evicted(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    limits = {"resources": {"limits": {"ephemeral-storage": "64Mi"}}}
    await core.create_namespaced_pod(namespace, pod("hog", WRITE_AND_WAIT.format(mib=100), container=limits))

    got = await wait_for_pod_phase(core, namespace, "hog", {"Succeeded", "Failed"})

    assert got["status"]["phase"] == "Failed"
    assert got["status"]["reason"] == "Evicted"
    assert (
        got["status"]["message"]
        == "Pod ephemeral local storage usage exceeds the total limit of containers 64Mi. "
    )
    conds = {c["type"]: c for c in got["status"]["conditions"]}
    assert conds["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    assert got["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137

    async def evicted_event() -> bool:
        events = await core.list_namespaced_event(namespace, field_selector="involvedObject.name=hog")
        return any(e.reason == "Evicted" and e.message == got["status"]["message"] for e in events.items)

    await wait_for(evicted_event, 30, "Evicted event")


async def test_node_low_on_ephemeral_storage_evicts_with_kubelet_message(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod("fill", WRITE_AND_WAIT.format(mib=300), **SMALL))

    got = await wait_for_pod_phase(core, namespace, "fill", {"Succeeded", "Failed"})

    assert got["spec"]["nodeName"] == SMALL_NODE
    assert got["status"]["reason"] == "Evicted"
    m = re.fullmatch(
        r"The node was low on resource: ephemeral-storage\. "
        r"Threshold quantity: (\d+)Ki, available: (-?\d+)Ki\. "
        r"Container main was using (\d+)(Ki|Mi), request is 0, "
        r"has larger consumption of ephemeral-storage\. ",
        got["status"]["message"],
    )
    assert m, got["status"]["message"]
    threshold, available = int(m.group(1)), int(m.group(2))
    used_kib = int(m.group(3)) * (1024 if m.group(4) == "Mi" else 1)
    assert available < threshold
    assert used_kib > 256 * 1024  # past the node's 256Mi allocatable


async def test_writes_to_a_pvc_do_not_count_as_ephemeral_storage(kube_api, namespace, make_pvc):
    core = client.CoreV1Api(kube_api)
    data = await make_pvc(namespace, "work", "1Gi")
    script = "open('/work/blob', 'wb').write(b'x' * 300 * 2**20); import time; time.sleep(2)"
    spec = {
        **SMALL,
        "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "work"}}],
        "container": {"volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    }
    await core.create_namespaced_pod(namespace, pod("big-pvc", script, **spec))

    got = await wait_for_pod_phase(core, namespace, "big-pvc", {"Succeeded", "Failed"})

    assert got["status"]["phase"] == "Succeeded", got["status"]
    assert (data / "blob").stat().st_size == 300 * 2**20


async def test_limitrange_max_rejects_pod_at_admission(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    lr = {
        "metadata": {"name": "eph"},
        "spec": {"limits": [{"type": "Container", "max": {"ephemeral-storage": "1Gi"}}]},
    }
    await core.create_namespaced_limit_range(namespace, lr)
    big = {"resources": {"limits": {"ephemeral-storage": "2Gi"}, "requests": {"ephemeral-storage": "2Gi"}}}

    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_pod(namespace, pod("too-big", "print(1)", container=big))

    assert err.value.status == 403
    assert "maximum ephemeral-storage usage per Container is 1Gi, but limit is 2Gi" in err.value.body
    pods = await core.list_namespaced_pod(namespace)
    assert pods.items == []


async def test_resourcequota_rejects_pod_over_requests_ephemeral_storage(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    quota = {"metadata": {"name": "eph"}, "spec": {"hard": {"requests.ephemeral-storage": "1Gi"}}}
    await core.create_namespaced_resource_quota(namespace, quota)

    async def enforced() -> bool:
        q = await core.read_namespaced_resource_quota("eph", namespace)
        return bool(q.status and q.status.hard)

    # Admission only enforces a quota once the controller-manager has filled status.hard.
    await wait_for(enforced, 60, "quota status.hard")
    big = {"resources": {"requests": {"ephemeral-storage": "2Gi"}}}

    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_pod(namespace, pod("too-big", "print(1)", container=big))

    assert err.value.status == 403
    assert "exceeded quota: eph" in err.value.body
    assert "requested: requests.ephemeral-storage=2Gi" in err.value.body
    ok = {"resources": {"requests": {"ephemeral-storage": "100Mi"}}}
    await core.create_namespaced_pod(namespace, pod("fits", "print(1)", container=ok))
    assert (await wait_for_pod_phase(core, namespace, "fits", {"Succeeded", "Failed"}))["status"][
        "phase"
    ] == ("Succeeded")
