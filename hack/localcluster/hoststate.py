"""What real nodes change on the host, recorded before they start and put back after they stop.

The kubelet sets ``vm.overcommit_memory``, ``kernel.panic``, ``kernel.panic_on_oops`` and the keyring limits;
the CNI bridge plugin sets ``net.ipv4.ip_forward``; kube-proxy may touch conntrack and ``route_localnet``.
The kubelet adds ``KUBE-FIREWALL``/``KUBE-KUBELET-CANARY``/``KUBE-IPTABLES-HINT`` chains, kube-proxy its
``KUBE-*`` chains (removed by ``kube-proxy --cleanup``). ``snapshot()`` is what the restore test compares.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)
# Chains the kubelet and kube-proxy create; removed at teardown unless they were there before we started.
_OUR_CHAIN = re.compile(r"^(KUBE-|MODELPUSH-)")
CNI_STATE = Path("/var/lib/cni")
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # the kubelet's symlinks; its path is not configurable
SHIM_SOCKETS = Path("/run/containerd/s")
# Directories containerd, the kubelet and CNI create on first use; what was not there before is removed.
HOST_DIRS = (CNI_STATE, CONTAINER_LOG_LINKS, Path("/run/containerd"), Path("/var/lib/kubelet"))


def _proc_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    out = {}
    for k in SYSCTLS:
        try:
            out[k] = " ".join(_proc_path(k).read_text().split())
        except OSError:
            continue
    return out


def record(path: Path) -> None:
    """Saves the sysctls and the iptables chain names as they are now (once: a restart keeps the first)."""
    if path.exists():
        return
    state = {
        "sysctls": read_sysctls(),
        "chains": {t: sorted(chains(t)) for t in _TABLES},
        "dirs": sorted(str(x) for d in HOST_DIRS for x in _dirs(d)),
    }
    path.write_text(json.dumps(state, indent=1))


def restore(path: Path, kube_proxy: Path | None) -> list[str]:
    """Puts the recorded sysctls back and removes the chains that were not there; returns what it did."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    done = []
    if kube_proxy is not None and kube_proxy.exists():
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, check=False)
        done.append("kube-proxy --cleanup")
    for table_key, before in state.get("chains", {}).items():
        done += _remove_chains(table_key, set(before))
    for k, v in state.get("sysctls", {}).items():
        if read_sysctls().get(k) != v:
            try:
                _proc_path(k).write_text(v)
                done.append(f"sysctl {k}={v}")
            except OSError as e:
                done.append(f"sysctl {k}={v} failed: {e}")
    had = set(state.get("dirs", []))
    for d in HOST_DIRS:
        for x in sorted(_dirs(d), key=lambda x: -len(x.parts)):
            if str(x) not in had:
                with contextlib.suppress(OSError):  # a leftover file keeps its directory, and shows
                    x.rmdir()
                    done.append(f"rmdir {x}")
    path.unlink(missing_ok=True)
    return done


def _dirs(d: Path) -> list[Path]:
    """``d`` and the directories below it (none if it does not exist)."""
    if not d.is_dir():
        return []
    return [d, *(x for x in d.rglob("*") if x.is_dir() and not x.is_symlink())]


_TABLES = [f"{cmd}:{t}" for cmd in ("iptables", "ip6tables") for t in ("filter", "nat", "mangle", "raw")]


def _save(table_key: str) -> str:
    cmd, table = table_key.split(":")
    r = subprocess.run([f"{cmd}-save", "-t", table], capture_output=True, text=True, check=False)
    return r.stdout if r.returncode == 0 else ""


def chains(table_key: str) -> set[str]:
    return {ln[1:].split()[0] for ln in _save(table_key).splitlines() if ln.startswith(":")}


def _remove_chains(table_key: str, before: set[str]) -> list[str]:
    cmd, table = table_key.split(":")
    ours = {c for c in chains(table_key) if _OUR_CHAIN.match(c) and c not in before}
    if not ours:
        return []
    # Rules in any chain that jump to ours go first (iptables -D with the rule's own spec), then the chains.
    for ln in _save(table_key).splitlines():
        if ln.startswith("-A ") and (m := re.search(r" -[jg] (\S+)", ln)) and m.group(1) in ours:
            spec = ln[3:].split(" ", 1)
            if spec[0] not in ours:
                subprocess.run(
                    [cmd, "-w", "-t", table, "-D", spec[0], *shlex.split(spec[1])], capture_output=True
                )
    for c in ours:
        subprocess.run([cmd, "-w", "-t", table, "-F", c], capture_output=True)
    for c in ours:
        subprocess.run([cmd, "-w", "-t", table, "-X", c], capture_output=True)
    return [f"{cmd} -t {table} -X {c}" for c in sorted(ours)]


# -- snapshot (for the restore test) -----------------------------------------------------------------


def _iptables_rules() -> dict[str, list[str]]:
    out = {}
    for t in _TABLES:
        lines = [re.sub(r"\[\d+:\d+\]", "", ln) for ln in _save(t).splitlines() if ln[:1] in (":", "-")]
        out[t] = sorted(lines)
    return out


def _cgroups() -> dict[str, list[str]]:
    root = Path("/sys/fs/cgroup")
    out = {}
    for ctrl in sorted(root.iterdir()) if root.exists() else []:
        if ctrl.is_dir():
            out[ctrl.name] = sorted(p.name for p in ctrl.iterdir() if p.is_dir())
    return out


def _listing(d: Path) -> list[str]:
    if not d.exists():
        return []
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def snapshot() -> dict[str, object]:
    """Everything real nodes may change on this host, in a comparable form."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    mounts = sorted({ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()})
    return {
        "sysctls": read_sysctls(),
        "iptables": _iptables_rules(),
        "links": sorted(ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()),
        "mounts": mounts,
        "cgroups": _cgroups(),
        "cni": _listing(CNI_STATE),
        "container_logs": _listing(CONTAINER_LOG_LINKS),
        "shim_sockets": _listing(SHIM_SOCKETS),
        "netns": _listing(Path("/run/netns")),
        "processes": sorted(
            " ".join(_cmdline(p)) for p in os.listdir("/proc") if p.isdigit() and _is_node_process(p)
        ),
    }


def _cmdline(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_node_process(pid: str) -> bool:
    argv0 = Path(_cmdline(pid)[0]).name if _cmdline(pid) else ""
    return argv0 in ("containerd", "containerd-shim-runc-v2", "kubelet", "kube-proxy", "runc")
