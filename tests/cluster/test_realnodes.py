"""Real nodes: the kubelet v1.33 on its own containerd runs local images, reports status, serves logs."""

from kubernetes_asyncio import client

from controller.model.quantity import parse_quantity
from hack.localcluster.topology import NODE, SMALL_LABEL, SMALL_NODE, SMALL_TAINT
from tests.cluster.pods import TOLERATE_SMALL, bash_pod
from tests.fixtures.cluster import wait_for, wait_for_pod_phase


async def test_nodes_are_real_kubelets_on_containerd(real_api):
    core = client.CoreV1Api(real_api)

    nodes = {n.metadata.name: n for n in (await core.list_node()).items}

    assert set(nodes) == {NODE, SMALL_NODE}
    for n in nodes.values():
        assert n.status.node_info.kubelet_version == "v1.33.13"
        assert n.status.node_info.container_runtime_version.startswith("containerd://1.6")
        assert {c.type: c.status for c in n.status.conditions}["Ready"] == "True"
    small = nodes[SMALL_NODE]
    assert small.metadata.labels[SMALL_LABEL[0]] == SMALL_LABEL[1]
    assert [(t.key, t.value, t.effect) for t in small.spec.taints] == [
        (SMALL_TAINT["key"], SMALL_TAINT["value"], SMALL_TAINT["effect"])
    ]
    # The small node's kubelet root is a 512Mi tmpfs: its capacity says so.
    assert parse_quantity(small.status.capacity["ephemeral-storage"]) == 512 * 2**20


async def test_pod_runs_and_kubectl_logs_reads_it(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    script = "echo hello from $(hostname); echo 'all good' > /dev/termination-log"
    await core.create_namespaced_pod(real_namespace, bash_pod(real_cluster, "ok", script))

    got = await wait_for_pod_phase(core, real_namespace, "ok", {"Succeeded", "Failed"})

    assert got["status"]["phase"] == "Succeeded", got["status"]
    assert got["spec"]["nodeName"] == NODE
    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (0, "Completed", "all good\n")
    assert got["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    logs = await core.read_namespaced_pod_log("ok", real_namespace)
    assert logs == "hello from ok\n"


async def test_failing_command_gives_exit_code_and_taint_keeps_pods_off_small_node(
    real_cluster, real_api, real_namespace
):
    core = client.CoreV1Api(real_api)
    await core.create_namespaced_pod(real_namespace, bash_pod(real_cluster, "bad", "exit 3"))
    pinned = bash_pod(real_cluster, "pinned", "true", nodeSelector=TOLERATE_SMALL["nodeSelector"])
    await core.create_namespaced_pod(real_namespace, pinned)

    got = await wait_for_pod_phase(core, real_namespace, "bad", {"Succeeded", "Failed"})

    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (got["status"]["phase"], term["reason"], term["exitCode"]) == ("Failed", "Error", 3)

    async def unschedulable() -> str:
        p = await core.read_namespaced_pod("pinned", real_namespace)
        conds = {c.type: c for c in p.status.conditions or []}
        c = conds.get("PodScheduled")
        return c.message if c is not None and c.reason == "Unschedulable" else ""

    assert "untolerated taint" in await wait_for(unschedulable, 30, "scheduler to report Unschedulable")
    await core.create_namespaced_pod(
        real_namespace, bash_pod(real_cluster, "tolerant", "true", **TOLERATE_SMALL)
    )
    got = await wait_for_pod_phase(core, real_namespace, "tolerant", {"Succeeded", "Failed"})
    assert (got["spec"]["nodeName"], got["status"]["phase"]) == (SMALL_NODE, "Succeeded")
