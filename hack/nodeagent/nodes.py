"""Node registration, status heartbeats and node Leases (what the kubelet's node status manager does)."""

import asyncio
import logging
import platform
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from controller.model.quantity import format_quantity, parse_quantity
from hack.nodeagent.config import NodeConfig, parse_taint
from hack.nodeagent.eviction import node_capacity
from hack.nodeagent.kube import MERGE, status_code
from hack.nodeagent.podstatus import HOST_IP, now

log = logging.getLogger("nodeagent.nodes")
KUBELET_VERSION = "v1.33.13"
LEASE_NS = "kube-node-lease"
LEASE_SECONDS = 40
_BOOT_ID = str(uuid.uuid4())


def capacity(n: NodeConfig) -> tuple[dict[str, str], dict[str, str]]:
    alloc = parse_quantity(n.ephemeral)
    cap = {
        "cpu": n.cpu,
        "memory": n.memory,
        "ephemeral-storage": format_quantity(node_capacity(alloc)),
        "pods": str(n.pods),
    }
    return cap, {**cap, "ephemeral-storage": n.ephemeral}


def node_conditions(ts: str, since: str) -> list[dict[str, Any]]:
    def c(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": ts,
            "lastTransitionTime": since,
        }

    return [
        c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        c("Ready", "True", "KubeletReady", "local node agent is posting ready status"),
    ]


def node_status(n: NodeConfig, ts: str, since: str) -> dict[str, Any]:
    cap, alloc = capacity(n)
    return {
        "capacity": cap,
        "allocatable": alloc,
        "conditions": node_conditions(ts, since),
        "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": n.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, n.name).hex,
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, n.name)),
            "bootID": _BOOT_ID,
            "kernelVersion": platform.release(),
            "osImage": "modelpush local node",
            "containerRuntimeVersion": "local-process://0.1.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_labels(n: NodeConfig) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "local",
        **n.labels,
    }


class NodeRegistrar:
    def __init__(self, api: client.ApiClient, node: NodeConfig) -> None:
        self.core = client.CoreV1Api(api)
        self.coord = client.CoordinationV1Api(api)
        self.node = node
        self.since = now()
        self.uid = ""

    async def register(self) -> None:
        n = self.node
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": n.name, "labels": node_labels(n)},
            "spec": {"taints": [parse_taint(t) for t in n.taints]},
        }
        try:
            created = await self.core.create_node(body)
            self.uid = created.metadata.uid
        except client.ApiException as e:
            if e.status != 409:
                raise
        # The TaintNodesByCondition admission plugin adds node.kubernetes.io/not-ready on create; the node
        # lifecycle controller would lift it once Ready. We are that controller here: set the taints we want.
        patch = {
            "metadata": {"labels": node_labels(n)},
            "spec": {"taints": [parse_taint(t) for t in n.taints]},
        }
        got = await self.core.patch_node(n.name, patch, _content_type=MERGE)
        self.uid = got.metadata.uid
        await self.heartbeat()
        log.info("node registered", extra={"node": n.name})

    async def heartbeat(self) -> None:
        body = {"status": node_status(self.node, now(), self.since)}
        await self.core.patch_node_status(self.node.name, body, _content_type=MERGE)

    async def renew_lease(self) -> None:
        name = self.node.name
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NS,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uid}],
            },
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew},
        }
        try:
            await self.coord.patch_namespaced_lease(
                name, LEASE_NS, {"spec": body["spec"]}, _content_type=MERGE
            )
        except client.ApiException as e:
            if e.status != 404:
                raise
            await self.coord.create_namespaced_lease(LEASE_NS, body)

    async def run(self, stop: asyncio.Event) -> None:
        """Lease every 10s, status every 30s, re-registering if someone deleted the Node."""
        tick = 0
        while not stop.is_set():
            try:
                await self.renew_lease()
                if tick % 3 == 0:
                    await self.heartbeat()
            except client.ApiException as e:
                if status_code(e) == 404:
                    await self.register()
                else:
                    log.warning("node heartbeat failed", extra={"node": self.node.name, "error": str(e)})
            except OSError as e:
                log.warning("node heartbeat failed", extra={"node": self.node.name, "error": str(e)})
            tick += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=10)
            except TimeoutError:
                pass
