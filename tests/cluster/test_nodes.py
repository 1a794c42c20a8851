"""Nodes registered by the node agent look like kubelet-managed nodes to the scheduler."""

from datetime import UTC, datetime

from kubernetes_asyncio import client

from tests.cluster.pods import pod
from tests.fixtures.cluster import NODE, SMALL_NODE, wait_for, wait_for_pod_phase


async def test_nodes_have_capacity_labels_taints_and_fresh_leases(kube_api):
    core = client.CoreV1Api(kube_api)
    coord = client.CoordinationV1Api(kube_api)

    big = await core.read_node(NODE)
    small = await core.read_node(SMALL_NODE)

    assert big.status.allocatable["ephemeral-storage"] == "10Gi"
    assert small.status.allocatable["ephemeral-storage"] == "256Mi"
    assert {"cpu", "memory", "pods"} <= set(small.status.allocatable)
    assert small.metadata.labels["modelpush.dev/node-size"] == "small"
    assert [(t.key, t.value, t.effect) for t in small.spec.taints] == [
        ("modelpush.dev/small", "true", "NoSchedule")
    ]
    assert not big.spec.taints  # the admission-added not-ready taint was lifted
    ready = {c.type: c.status for c in small.status.conditions}
    assert ready["Ready"] == "True" and ready["DiskPressure"] == "False"
    first = (await coord.read_namespaced_lease(SMALL_NODE, "kube-node-lease")).spec.renew_time

    async def renewed() -> bool:
        lease = await coord.read_namespaced_lease(SMALL_NODE, "kube-node-lease")
        return lease.spec.renew_time > first

    await wait_for(renewed, 30, "lease renewal")
    assert (datetime.now(UTC) - first).total_seconds() < 60


async def test_taint_keeps_untolerating_pods_off_the_small_node(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    spec = pod("pinned", "print(1)", nodeSelector={"modelpush.dev/node-size": "small"})
    await core.create_namespaced_pod(namespace, spec)

    async def unschedulable() -> bool:
        p = await core.read_namespaced_pod("pinned", namespace)
        conds = {c.type: c for c in p.status.conditions or []}
        return "PodScheduled" in conds and conds["PodScheduled"].reason == "Unschedulable"

    await wait_for(unschedulable, 30, "scheduler to report Unschedulable")
    p = await core.read_namespaced_pod("pinned", namespace)
    assert p.spec.node_name is None
    assert "untolerated taint" in p.status.conditions[0].message

    # The same pod with the toleration lands there and runs.
    spec["metadata"]["name"] = "tolerant"
    spec["spec"]["tolerations"] = [
        {"key": "modelpush.dev/small", "operator": "Exists", "effect": "NoSchedule"}
    ]
    await core.create_namespaced_pod(namespace, spec)
    got = await wait_for_pod_phase(core, namespace, "tolerant", {"Succeeded", "Failed"})
    assert (got["spec"]["nodeName"], got["status"]["phase"]) == (SMALL_NODE, "Succeeded")
