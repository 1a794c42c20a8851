"""Pod networking on real nodes: pods reach this host (registry, apiserver via kube-proxy), nothing else."""

import subprocess

from kubernetes_asyncio import client

from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import wait_for_pod_phase

# bash's /dev/tcp: the base image has no curl or nc.
HTTP_GET = (
    "exec 3<>/dev/tcp/{host}/{port} && printf 'GET /v2/ HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' >&3 "
    "&& head -1 <&3"
)


async def test_pods_reach_the_registry_and_the_apiserver_service_and_have_no_dns(
    real_cluster, real_api, real_namespace
):
    core = client.CoreV1Api(real_api)
    host, port = real_cluster.registry.rsplit(":", 1)
    svc = await core.read_namespaced_service("kubernetes", "default")
    script = "; ".join(
        [
            HTTP_GET.format(host=host, port=port),
            f"exec 4<>/dev/tcp/{svc.spec.cluster_ip}/443 && echo apiserver-reached",
            "grep nameserver /etc/resolv.conf | grep -vc 'nameserver 127\\.' || true",
        ]
    )
    await core.create_namespaced_pod(real_namespace, bash_pod(real_cluster, "net", script))

    got = await wait_for_pod_phase(core, real_namespace, "net", {"Succeeded", "Failed"})

    logs = await core.read_namespaced_pod_log("net", real_namespace)
    assert got["status"]["phase"] == "Succeeded", logs
    # No name server but the pod's own loopback (where nothing listens): no query ever leaves the pod.
    assert [ln.strip() for ln in logs.splitlines()] == ["HTTP/1.0 200 OK", "apiserver-reached", "0"], logs
    assert got["status"]["podIP"].startswith(real_cluster.local.net.subnet.rsplit(".", 2)[0])


def test_forward_drops_pod_traffic_leaving_the_subnet_and_nothing_masquerades(real_cluster):
    net = real_cluster.local.net
    forward = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    chain = subprocess.run(["iptables", "-w", "-S", net.chain], capture_output=True, text=True).stdout
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout

    assert forward.splitlines()[1] == f"-A FORWARD -j {net.chain}"  # first, above kube-proxy's jumps
    assert chain.splitlines()[1:] == [
        f"-A {net.chain} -s {net.subnet} -d {net.subnet} -j RETURN",
        f"-A {net.chain} -s {net.subnet} -j DROP",
        f"-A {net.chain} -d {net.subnet} -j DROP",
    ]
    # kube-proxy masquerades only marked service traffic (to endpoints on this host); no source NAT rule
    # for the pod subnet exists (the CNI bridge runs with ipMasq: false).
    assert not [ln for ln in nat.splitlines() if net.subnet in ln and "MASQUERADE" in ln]
