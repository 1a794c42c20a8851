"""Ephemeral storage on the real nodes, apart from evictions (tests/cluster/test_eviction.py): writes to a
PVC do not count against a pod's ephemeral-storage limit, and LimitRange and ResourceQuota admission refuse
pods whose ephemeral-storage is too large before anything runs."""

import pytest
from kubernetes_asyncio import client

from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import wait_for, wait_for_pod_phase


async def test_writes_to_a_pvc_do_not_count_as_ephemeral_storage(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    claim = {
        "metadata": {"name": "work"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await core.create_namespaced_persistent_volume_claim(real_namespace, claim)
    # Twice the limit onto the PVC, then long enough for the kubelet's 5s volume stats and housekeeping to
    # have measured the pod several times: the same write into the container evicts it (test_eviction).
    script = (
        "dd if=/dev/zero of=/work/blob bs=1M count=120 status=none && sleep 20 && "
        "stat -c %s /work/blob > /dev/termination-log"
    )
    spec = bash_pod(
        real_cluster,
        "big-pvc",
        script,
        volumes=[{"name": "work", "persistentVolumeClaim": {"claimName": "work"}}],
        container={
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            "resources": {"limits": {"ephemeral-storage": "60Mi"}},
        },
    )
    await core.create_namespaced_pod(real_namespace, spec)

    got = await wait_for_pod_phase(core, real_namespace, "big-pvc", {"Succeeded", "Failed"}, timeout=180)

    assert got["status"]["phase"] == "Succeeded", got["status"]
    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert int(term["message"]) == 120 * 2**20


async def test_limitrange_max_rejects_pod_at_admission(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    lr = {
        "metadata": {"name": "eph"},
        "spec": {"limits": [{"type": "Container", "max": {"ephemeral-storage": "1Gi"}}]},
    }
    await core.create_namespaced_limit_range(real_namespace, lr)
    big = {"resources": {"limits": {"ephemeral-storage": "2Gi"}, "requests": {"ephemeral-storage": "2Gi"}}}

    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_pod(
            real_namespace, bash_pod(real_cluster, "too-big", "true", container=big)
        )

    assert err.value.status == 403
    assert "maximum ephemeral-storage usage per Container is 1Gi, but limit is 2Gi" in err.value.body
    pods = await core.list_namespaced_pod(real_namespace)
    assert pods.items == []


async def test_resourcequota_rejects_pod_over_requests_ephemeral_storage(
    real_cluster, real_api, real_namespace
):
    core = client.CoreV1Api(real_api)
    quota = {"metadata": {"name": "eph"}, "spec": {"hard": {"requests.ephemeral-storage": "1Gi"}}}
    await core.create_namespaced_resource_quota(real_namespace, quota)

    async def enforced() -> bool:
        q = await core.read_namespaced_resource_quota("eph", real_namespace)
        return bool(q.status and q.status.hard)

    # Admission only enforces a quota once the controller-manager has filled status.hard.
    await wait_for(enforced, 60, "quota status.hard")
    big = {"resources": {"requests": {"ephemeral-storage": "2Gi"}}}

    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_pod(
            real_namespace, bash_pod(real_cluster, "too-big", "true", container=big)
        )

    assert err.value.status == 403
    assert "exceeded quota: eph" in err.value.body
    assert "requested: requests.ephemeral-storage=2Gi" in err.value.body
    ok = {"resources": {"requests": {"ephemeral-storage": "100Mi"}}}
    await core.create_namespaced_pod(real_namespace, bash_pod(real_cluster, "fits", "true", container=ok))
    got = await wait_for_pod_phase(core, real_namespace, "fits", {"Succeeded", "Failed"})
    assert got["status"]["phase"] == "Succeeded", got["status"]
