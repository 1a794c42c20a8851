"""One real node: its own containerd (Debian 1.6, own root/state/socket) and the real kubelet.

Everything a node writes lives under ``<cluster>/nodes/<name>/`` except what the host fixes elsewhere:
cgroups under ``/sys/fs/cgroup/<controller>/<cgroup_root>``, the CNI cache in ``/var/lib/cni``, the
kubelet's symlinks in ``/var/log/containers`` and containerd's shim sockets in ``/run/containerd/s``.
``teardown()`` removes all of them, matching by this node's paths, never by process name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from controller.model.quantity import parse_quantity
from hack.certs import signed_cert
from hack.localcluster.kubeconfig import write_kubeconfig
from hack.localcluster.network import CNI_BIN_DIR, Network, cni_config
from hack.localcluster.topology import NodeSpec
from hack.ports import free_port

CGROUP_FS = Path("/sys/fs/cgroup")
CERT_DAYS = 30


@dataclass(frozen=True)
class NodePaths:
    root: Path

    @property
    def sock(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def tmpfs(self) -> Path:
        return self.root / "tmpfs"

    def kubelet_root(self, spec: NodeSpec) -> Path:
        return (self.tmpfs if spec.tmpfs else self.root) / "kubelet"

    def pod_logs(self, spec: NodeSpec) -> Path:
        return (self.tmpfs if spec.tmpfs else self.root) / "pod-logs"


def cgroup_root(net: Network, spec: NodeSpec) -> str:
    return f"/modelpush-{net.index}-{spec.name}"


def containerd_config(p: NodePaths, pause_image: str) -> str:
    """containerd 1.6 config: every path under the node dir; CRI as the feasibility check settled it."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{p.containerd_root}"
state = "{p.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{p.sock}"

[ttrpc]
  address = "{p.sock}.ttrpc"

# containerd 1.6's task service needs the v1 runtime loaded; its runc state stays under the node dir.
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{p.root / "runc-v1"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{p.root / "containerd" / "opt"}"

[{cri}]
  sandbox_image = "{pause_image}"
  # root here lacks CAP_SYS_RESOURCE: without this runc fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{p.root / "runc"}"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{p.root / "cni" / "net.d"}"
  [{cri}.registry]
    config_path = "{p.root / "certs.d"}"
"""


def registry_hosts(registry: str) -> str:
    """certs.d/<registry>/hosts.toml: the local registry over plain HTTP."""
    return (
        f'server = "http://{registry}"\n\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'
    )


def kubelet_config(spec: NodeSpec, p: NodePaths, net: Network, ca: Path, port: int, healthz: int) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{p.sock}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root(net, spec),
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "localStorageCapacityIsolation": True,
        "housekeepingInterval": "5s",
        # The default 1m reports emptyDir use late, and the eviction manager then picks the wrong pod.
        "volumeStatsAggPeriod": "5s",
        "evictionPressureTransitionPeriod": "30s",
        "evictionHard": dict(spec.eviction_hard),
        "podLogsDir": str(p.pod_logs(spec)),
        # No DNS for pods: an empty resolv.conf, so nothing is ever sent to an outside name server.
        "resolvConf": "",
        "clusterDNS": [],
        "registerWithTaints": list(spec.taints),
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
        "nodeStatusUpdateFrequency": "5s",
    }


def node_kubeconfig(spec: NodeSpec, p: NodePaths, server: str, ca: tuple[Path, Path]) -> Path:
    """A client certificate as ``system:node:<name>`` so the Node authorizer treats it as that node."""
    pki = p.root / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    crt, key = signed_cert(
        pki / "kubelet-client.crt",
        pki / "kubelet-client.key",
        f"/O=system:nodes/CN=system:node:{spec.name}",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
        ca,
        CERT_DAYS,
    )
    return write_kubeconfig(p.root / "kubeconfig", server, ca[0], crt, key, name="modelpush-node")


def prepare(
    spec: NodeSpec,
    slot: int,
    p: NodePaths,
    net: Network,
    server: str,
    ca: tuple[Path, Path],
    registry: str,
    pause_image: str,
) -> tuple[Path, Path]:
    """Writes containerd's and the kubelet's config, mounts the tmpfs and creates the cgroup root.

    Returns (containerd config, kubelet config)."""
    p.root.mkdir(parents=True, exist_ok=True)
    if spec.tmpfs and not os.path.ismount(p.tmpfs):
        p.tmpfs.mkdir(exist_ok=True)
        opts = f"size={parse_quantity(spec.tmpfs)},mode=0755"  # bytes: tmpfs knows k/m/g, not Mi
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(p.tmpfs)],
            check=True,
            capture_output=True,
        )
    for d in (p.kubelet_root(spec), p.pod_logs(spec), p.root / "cni" / "net.d", p.root / "cni" / "ipam"):
        d.mkdir(parents=True, exist_ok=True)
    (p.root / "cni" / "net.d" / "10-modelpush.conflist").write_text(
        json.dumps(cni_config(net, slot, p.root / "cni" / "ipam"), indent=1)
    )
    hosts = p.root / "certs.d" / registry
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts.toml").write_text(registry_hosts(registry))
    ctd = p.root / "containerd.toml"
    ctd.write_text(containerd_config(p, pause_image))
    node_kubeconfig(spec, p, server, ca)
    kcfg = p.root / "kubelet.yaml"
    kcfg.write_text(yaml.safe_dump(kubelet_config(spec, p, net, ca[0], free_port(), free_port())))
    make_cgroup_root(cgroup_root(net, spec))
    return ctd, kcfg


def containerd_argv(ctd: Path) -> list[str]:
    return ["containerd", "--config", str(ctd), "--log-level", "warn"]


def kubelet_argv(kubelet: Path, spec: NodeSpec, p: NodePaths, net: Network, kcfg: Path) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in spec.labels.items())
    argv = [
        str(kubelet),
        f"--config={kcfg}",
        f"--kubeconfig={p.root / 'kubeconfig'}",
        f"--hostname-override={spec.name}",
        f"--node-ip={net.gateway}",
        f"--root-dir={p.kubelet_root(spec)}",
        f"--cert-dir={p.root / 'pki'}",
        "--v=1",
    ]
    if labels:
        argv.append(f"--node-labels={labels}")
    return argv


# -- cgroups -------------------------------------------------------------------------------------------


def _controllers() -> list[Path]:
    """The cgroup v1 hierarchies (the kubelet uses each of them; the v2 'unified' one it leaves alone)."""
    if not CGROUP_FS.exists():
        return []
    return [d for d in sorted(CGROUP_FS.iterdir()) if d.is_dir() and d.name != "unified"]


def make_cgroup_root(root: str) -> None:
    """The kubelet refuses a cgroupRoot that does not exist; cpuset needs its cpus/mems copied down."""
    for ctrl in _controllers():
        d = ctrl / root.lstrip("/")
        d.mkdir(exist_ok=True)
        if ctrl.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (d / f).read_text().strip():
                    (d / f).write_text((ctrl / f).read_text())


def cgroup_pids(root: str) -> set[int]:
    pids: set[int] = set()
    for ctrl in _controllers():
        d = ctrl / root.lstrip("/")
        # os.walk, not rglob: cgroups vanish while we walk them (rglob raises then).
        for top, _, files in os.walk(d):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids |= {int(x) for x in (Path(top) / "cgroup.procs").read_text().split()}
    return pids


def remove_cgroup_root(root: str) -> list[str]:
    """rmdir the tree bottom-up (cgroupfs dirs are removed with rmdir, never rm -r); returns leftovers."""
    left = []
    for ctrl in _controllers():
        d = ctrl / root.lstrip("/")
        if not d.exists():
            continue
        for top, _, _ in sorted(os.walk(d), key=lambda w: -len(Path(w[0]).parts)):
            if top != str(d):
                with contextlib.suppress(OSError):
                    Path(top).rmdir()
        try:
            d.rmdir()
        except OSError as e:
            left.append(f"{d}: {e}")
    return left


# -- teardown ------------------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def shim_pids(sock: Path) -> set[int]:
    """containerd shims started by this node's containerd: their argv names its socket after -address."""
    out = set()
    for e in os.listdir("/proc"):
        if e.isdigit():
            argv = _cmdline(int(e))
            if "-address" in argv and str(sock) in argv:
                out.add(int(e))
    return out


def shim_sockets(state: Path) -> list[Path]:
    """The shim sockets (in /run/containerd/s) this node's tasks recorded in their bundle's address file."""
    out = []
    for f in state.glob("io.containerd.runtime.v2.task/*/*/address"):
        with contextlib.suppress(OSError):
            addr = f.read_text().strip()
            if addr.startswith("unix://"):
                out.append(Path(addr[len("unix://") :]))
    return out


def kill_all(pids: Callable[[], set[int]], timeout: float = 10.0) -> None:
    """SIGKILL whatever ``pids()`` returns until it returns nothing (processes may fork meanwhile)."""
    deadline = time.monotonic() + timeout
    while (left := pids() - {os.getpid()}) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def unmount_under(root: Path) -> list[str]:
    """Unmounts every mount at or below ``root``, deepest first; returns those that would not go."""
    prefix = str(root.resolve())
    left = []
    for _ in range(3):
        mps = [
            ln.split()[4].encode().decode("unicode_escape")
            for ln in Path("/proc/self/mountinfo").read_text().splitlines()
        ]
        mine = sorted({m for m in mps if m == prefix or m.startswith(prefix + "/")}, key=len, reverse=True)
        if not mine:
            return []
        left = []
        for m in mine:
            r = subprocess.run(["umount", m], capture_output=True, text=True)
            if r.returncode != 0:
                r = subprocess.run(["umount", "-l", m], capture_output=True, text=True)
                if r.returncode != 0:
                    left.append(f"{m}: {r.stderr.strip()}")
    return left
