"""Ephemeral storage on real nodes: the kubelet's own evictions (pod limit, node pressure), its messages."""

import re

from kubernetes_asyncio import client

from hack.localcluster.topology import SMALL_NODE
from tests.cluster.pods import TOLERATE_SMALL, bash_pod
from tests.fixtures.cluster import wait_for, wait_for_pod_phase

FILL = "dd if=/dev/zero of={path} bs=1M count={mib} status=none; sleep 600"


async def test_write_past_ephemeral_limit_is_evicted_by_the_kubelet(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    limits = {"resources": {"limits": {"ephemeral-storage": "50Mi"}}}
    spec = bash_pod(real_cluster, "hog", FILL.format(path="/tmp/blob", mib=100), container=limits)
    await core.create_namespaced_pod(real_namespace, spec)

    got = await wait_for_pod_phase(core, real_namespace, "hog", {"Succeeded", "Failed"}, timeout=180)

    assert (got["status"]["phase"], got["status"]["reason"]) == ("Failed", "Evicted"), got["status"]
    assert got["status"]["message"].strip() == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 50Mi."
    )

    async def evicted_event() -> bool:
        events = await core.list_namespaced_event(real_namespace, field_selector="involvedObject.name=hog")
        return any(e.reason == "Evicted" and e.source.component == "kubelet" for e in events.items)

    await wait_for(evicted_event, 30, "Evicted event from the kubelet")


async def test_small_node_low_on_ephemeral_storage_evicts_with_the_kubelets_message(
    real_cluster, real_api, real_namespace
):
    core = client.CoreV1Api(real_api)
    # An emptyDir on the small node lives on its 512Mi tmpfs kubelet root: filling it is node pressure.
    spec = bash_pod(
        real_cluster,
        "fill",
        FILL.format(path="/scratch/blob", mib=470),
        volumes=[{"name": "scratch", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
        **TOLERATE_SMALL,
    )
    await core.create_namespaced_pod(real_namespace, spec)

    got = await wait_for_pod_phase(core, real_namespace, "fill", {"Succeeded", "Failed"}, timeout=240)

    assert got["spec"]["nodeName"] == SMALL_NODE
    assert got["status"]["reason"] == "Evicted", got["status"]
    m = re.fullmatch(
        r"The node was low on resource: ephemeral-storage\. "
        r"Threshold quantity: (\d+)(Ki|Mi)?, available: (-?\d+)Ki\. ?"
        # the kubelet names the container only when it has per-container stats for it at that moment
        r"(Container main was using (\d+)(Ki|Mi|Gi), request is 0, "
        r"has larger consumption of ephemeral-storage\. ?)?",
        got["status"]["message"],
    )
    assert m, got["status"]["message"]
    assert int(m.group(3)) < 52 * 1024  # below the 10% threshold of 512Mi
    conds = {c["type"]: c for c in got["status"]["conditions"]}
    assert conds["DisruptionTarget"]["reason"] == "TerminationByKubelet"  # node pressure only, not limits

    # The kubelet frees the evicted pod's emptyDir; the node leaves DiskPressure after its 30s transition
    # period (until then it admits no new pod), so later tests find it usable.
    async def no_pressure() -> bool:
        node = await core.read_node(SMALL_NODE)
        return {c.type: c.status for c in node.status.conditions}["DiskPressure"] == "False"

    await wait_for(no_pressure, 120, f"{SMALL_NODE} out of DiskPressure")
