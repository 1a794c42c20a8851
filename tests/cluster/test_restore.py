"""Stopping a cluster with real nodes puts the host back exactly as it was before the cluster started."""

import json
import subprocess
import sys

import pytest
from kubernetes_asyncio import client

from hack.localcluster import hoststate
from hack.localcluster.binaries import REPO
from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import wait_for_pod_phase


def _diff(before: object, after: object) -> str:
    a = json.dumps(before, indent=1, sort_keys=True).splitlines()
    b = json.dumps(after, indent=1, sort_keys=True).splitlines()
    return "\n".join([f"- {x}" for x in a if x not in b] + [f"+ {x}" for x in b if x not in a])


async def test_stop_restores_processes_mounts_cgroups_iptables_sysctls_and_links(
    real_cluster, real_api, real_namespace
):
    if not real_cluster.host_before:
        pytest.skip("MODELPUSH_REAL_CLUSTER_DIR: an attached cluster is not this session's to stop")
    core = client.CoreV1Api(real_api)
    # A running pod on each node, with the volumes the kubelet mounts (token projection, emptyDir on tmpfs).
    for name, extra in (
        ("disk", {}),
        ("small", {"tolerations": [{"operator": "Exists"}], "nodeName": "local-small"}),
    ):
        spec = bash_pod(
            real_cluster,
            name,
            "sleep 600",
            volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
            container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
            **extra,
        )
        await core.create_namespaced_pod(real_namespace, spec)
    for name in ("disk", "small"):
        await wait_for_pod_phase(core, real_namespace, name, "Running")
    # `make cluster-up` on the running cluster (same layout as .local/) keeps every process: checked here,
    # before the stop, because after a restart Tekton's Deployments were seen not to come back in time.
    _cli_up_restarts_nothing(real_cluster)
    during = hoststate.snapshot()
    assert during != real_cluster.host_before  # the nodes did change the host

    # Blocking on purpose: start() must run on the main thread (its processes die with that thread).
    left = real_cluster.stop()
    after = hoststate.snapshot()
    try:
        assert left == []
        for key, before in real_cluster.host_before.items():
            assert after[key] == before, f"{key} not restored:\n{_diff(before, after[key])}"
    finally:
        real_cluster.start()  # the rest of the session keeps its cluster (same ports and certificates)


def _cli_up_restarts_nothing(real_cluster):
    # The session's real cluster is laid out like .local/: `up` on it must keep every process.
    root = real_cluster.workdir.parent
    cli = [sys.executable, "-m", "hack.localcluster", "--dir", str(root)]
    piddir = real_cluster.local.piddir
    before = {p.name: p.read_text() for p in piddir.glob("*.pid")}
    assert {"etcd.pid", "kube-apiserver.pid", "kubelet-local-node-1.pid", "kubelet-local-small.pid"} <= set(
        before
    )
    assert {"containerd-local-node-1.pid", "kube-proxy.pid", "registry.pid"} <= set(before)

    again = subprocess.run([*cli, "up"], cwd=REPO, capture_output=True, text=True)

    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_text() for p in piddir.glob("*.pid")} == before  # nothing restarted
    env = subprocess.run([*cli, "env"], cwd=REPO, capture_output=True, text=True)
    assert f"export KUBECONFIG={root / 'kubeconfig'}" in env.stdout
    assert f"export MODELPUSH_REGISTRY={real_cluster.registry}" in env.stdout
