"""Starts and stops a cluster's real nodes (containerd + kubelet each) and its one kube-proxy.

Both kubelets share the host's iptables, so one kube-proxy (iptables mode) serves the whole cluster.
Teardown order matters: kubelets first (so nothing restarts containers), then every process in the nodes'
cgroups, the shims of each node's containerd, containerd itself, kube-proxy; then mounts under the cluster
dir, the cgroup roots, the CNI cache and log symlinks this cluster made, the bridge, and finally the iptables
chains and sysctls recorded before the first start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hack.localcluster import hoststate, network
from hack.localcluster import node as nd
from hack.localcluster.binaries import REPO
from hack.localcluster.network import Network
from hack.localcluster.procs import alive, read_pid, stop_recorded
from hack.localcluster.topology import NodeSpec
from hack.ports import free_port

if TYPE_CHECKING:
    from hack.localcluster.cluster import LocalCluster


class NodeError(RuntimeError):
    pass


def node_bins() -> Path:
    """kubelet and kube-proxy, built by ``hack/build-control-plane.sh node`` (a no-op when cached)."""

    env = os.environ.get("MODELPUSH_NODE_BIN_DIR")
    if env:
        return Path(env)
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-control-plane.sh"), "node"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _kube_proxy_synced() -> bool:
    out = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    return "-j KUBE-FORWARD" in out


class RealNodes:
    def __init__(self, lc: LocalCluster, net: Network) -> None:
        self.lc = lc
        self.net = net
        self.dir = lc.workdir / "nodes"
        self.specs_file = lc.workdir / "nodes.yaml"

    def paths(self, name: str) -> nd.NodePaths:
        return nd.NodePaths(self.dir / name)

    def specs(self) -> list[NodeSpec]:
        try:
            raw = yaml.safe_load(self.specs_file.read_text()) or []
        except OSError:
            return []
        return [NodeSpec(**{**r, "taints": tuple(r.get("taints", ()))}) for r in raw]

    # -- start -----------------------------------------------------------------------------------------
    def start(
        self, specs: Sequence[NodeSpec], pause_image: str, registry: str, timeout: float = 120.0
    ) -> None:
        """Starts kube-proxy and every node not already running, then waits until all are Ready."""
        bins = node_bins()
        (self.lc.workdir / "node-bin").write_text(str(bins))  # for stop(): kube-proxy --cleanup
        pki = self.lc.pki
        assert pki is not None
        self.specs_file.write_text(
            yaml.safe_dump([{**vars(s), "taints": list(s.taints)} for s in specs], sort_keys=False)
        )
        if not self._alive("kube-proxy"):
            self._start_kube_proxy(bins)
        for slot, spec in enumerate(specs):
            if self._alive(f"kubelet-{spec.name}"):
                continue
            p = self.paths(spec.name)
            ctd, kcfg = nd.prepare(
                spec, slot, p, self.net, self.lc.server, (pki.ca_crt, pki.ca_key), registry, pause_image
            )
            self.lc.spawn(f"containerd-{spec.name}", nd.containerd_argv(ctd))
            self._wait(f"containerd of {spec.name}", p.sock.exists, 30, f"containerd-{spec.name}")
            self.lc.spawn(f"kubelet-{spec.name}", nd.kubelet_argv(bins / "kubelet", spec, p, self.net, kcfg))
        for spec in specs:
            self._wait(
                f"node {spec.name} Ready", lambda n=spec.name: self._ready(n), timeout, f"kubelet-{spec.name}"
            )
        # kube-proxy prepends its jumps to FORWARD once, at its first sync; then ours goes back on top.
        self._wait("kube-proxy's first sync", _kube_proxy_synced, 60, "kube-proxy")
        network.guard(self.net)

    def _alive(self, name: str) -> bool:
        pid = read_pid(self.lc.piddir, name)
        return pid is not None and alive(pid)

    def _wait(self, what: str, check: Any, timeout: float, proc: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if not self._alive(proc):
                log = self.lc.logdir / f"{proc}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise NodeError(f"{proc} exited while waiting for {what}; {log}:\n{tail}")
            time.sleep(0.5)
        raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}")

    def _ready(self, name: str) -> bool:
        code, obj = self.lc.rest().request("GET", f"/api/v1/nodes/{name}")
        if code != 200 or not isinstance(obj, dict):
            return False
        conds = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
        return conds.get("Ready") == "True"

    def _start_kube_proxy(self, bins: Path) -> None:
        cfg = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.lc.kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": self.net.subnet,
            "hostnameOverride": self.specs()[0].name if self.specs() else "local-node-1",
            "bindAddress": self.net.gateway,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{self.net.gateway}/32"],
            # Zero: leave the host's conntrack sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        }
        path = self.lc.workdir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.lc.spawn("kube-proxy", [str(bins / "kube-proxy"), f"--config={path}", "--v=1"])

    # -- stop ------------------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stops every node and puts the host back; returns what could not be removed (empty when clean).

        Every step runs even when an earlier one failed (a failure is reported in the returned list), so a
        surprise in one place never leaves mounts, cgroups or chains behind in the others."""
        specs = self.specs() or [NodeSpec(p.name) for p in self.dir.glob("*") if p.is_dir()]
        left: list[str] = []

        def step(what: str, fn: Callable[[], object]) -> None:
            try:
                out = fn()
            except Exception as e:  # reported, and the next step still runs
                left.append(f"{what}: {type(e).__name__}: {e}")
                return
            if isinstance(out, list):
                left.extend(out)

        step("stop kubelets", lambda: stop_recorded(self.lc.piddir, [f"kubelet-{s.name}" for s in specs]))
        for s in specs:
            root = nd.cgroup_root(self.net, s)
            step(f"kill pods in {root}", lambda r=root: nd.kill_all(lambda: nd.cgroup_pids(r)))
        for s in specs:
            p = self.paths(s.name)
            sockets = nd.shim_sockets(p.containerd_state)
            step(f"kill shims of {p.sock}", lambda p=p: nd.kill_all(lambda: nd.shim_pids(p.sock)))
            for sock in sockets:
                sock.unlink(missing_ok=True)
        others = [f"containerd-{s.name}" for s in specs] + ["kube-proxy"]
        step("stop containerd, kube-proxy", lambda: stop_recorded(self.lc.piddir, others))
        step("unmount", lambda: nd.unmount_under(self.lc.workdir))
        for s in specs:
            step(f"cgroups of {s.name}", lambda s=s: nd.remove_cgroup_root(nd.cgroup_root(self.net, s)))
            step(f"host files of {s.name}", lambda s=s: self._remove_host_files(s))
        step("network", lambda: network.down(self.net))
        bin_file = self.lc.workdir / "node-bin"
        kube_proxy = Path(bin_file.read_text().strip()) / "kube-proxy" if bin_file.exists() else None
        step(
            "host state", lambda: hoststate.restore(self.lc.workdir / "host-before.json", kube_proxy) and None
        )
        if not any(ln.startswith("unmount") or "/" in ln for ln in left):
            shutil.rmtree(self.dir, ignore_errors=True)  # never rm -r through a mount that would not go
        return left

    def _remove_host_files(self, s: NodeSpec) -> list[str]:
        """The CNI result cache and the kubelet's /var/log/containers symlinks for this node's pods."""
        logs = str(self.paths(s.name).pod_logs(s))
        if hoststate.CONTAINER_LOG_LINKS.exists():
            for link in hoststate.CONTAINER_LOG_LINKS.iterdir():
                with contextlib.suppress(OSError):
                    if link.is_symlink() and os.readlink(link).startswith(logs):
                        link.unlink()
        # Result files are named <network>-<sandbox id>-<ifname>; the loopback's network name is generic,
        # so match this node's sandbox ids (from containerd's root and state dirs).
        p = self.paths(s.name)
        ids = {
            x.name
            for d in (p.containerd_root, p.containerd_state)
            for x in (d / "io.containerd.grpc.v1.cri" / "sandboxes").glob("*")
        }
        results = hoststate.CNI_STATE / "results"
        if results.exists():
            for f in results.iterdir():
                if f.name.startswith(f"{self.net.cni_name}-") or any(f"-{i}-" in f.name for i in ids):
                    f.unlink(missing_ok=True)
        return []
