"""python -m hack.localcluster up [--small-node-size 512Mi] | down | env   (state in .local/ of the repo)

`up` starts, in the background and idempotently: the control plane, a registry (hack.registry) on the pod
network's gateway, the images the nodes need, and two real nodes (containerd + kubelet each, see
hack.localcluster.topology) with kube-proxy; writes .local/kubeconfig and .local/registry (host:port).
`down` stops everything `up` started, restores the host (mounts, cgroups, iptables, sysctls, the bridge)
and removes its state. `env` prints shell exports.
"""

import argparse
import shutil
import sys
from pathlib import Path

from hack.localcluster import topology
from hack.localcluster.binaries import REPO
from hack.localcluster.cluster import LocalCluster
from hack.localcluster.realcluster import RealCluster


class Paths:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = root / "cluster"
        self.kubeconfig = root / "kubeconfig"
        self.registry = root / "registry"


def up(p: Paths, small_size: str) -> None:
    rc = RealCluster.at(p.cluster, nodes=topology.nodes(small_size), tekton=True, controller=True).start()
    shutil.copyfile(rc.kubeconfig, p.kubeconfig)
    p.kubeconfig.chmod(0o600)
    p.registry.write_text(rc.registry + "\n")
    print(f"local cluster up: apiserver {rc.local.server}, nodes {', '.join(s.name for s in rc.nodes)}")
    print(f"{rc.nodes[-1].name} keeps its kubelet root and pod logs on a {small_size} tmpfs")
    print(f"registry: {rc.registry} (plain HTTP, reached by the host and by pods)")
    print(f"logs: {rc.local.logdir}")
    print("use it:")
    print(f"  export KUBECONFIG={p.kubeconfig}")
    print(f"  export MODELPUSH_REGISTRY=$(cat {p.registry})")
    print("  eval $(python -m hack.localcluster env)   # the same, in one go")
    print("  make run                                  # the controller against it")
    print("stop it: make cluster-down")


def down(p: Paths) -> int:
    left = LocalCluster(p.cluster).stop()
    shutil.rmtree(p.cluster, ignore_errors=True)
    for f in (p.kubeconfig, p.registry):
        f.unlink(missing_ok=True)
    if left:
        print("local cluster down, but these could not be removed:\n  " + "\n  ".join(left), file=sys.stderr)
        return 1
    print("local cluster down; host restored")
    return 0


def env(p: Paths) -> int:
    if not LocalCluster(p.cluster).running():
        print("# local cluster is not running: make cluster-up", file=sys.stderr)
        return 1
    print(f"export KUBECONFIG={p.kubeconfig}")
    if p.registry.exists():
        print(f"export MODELPUSH_REGISTRY={p.registry.read_text().strip()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hack.localcluster", description=__doc__)
    ap.add_argument("--dir", type=Path, default=REPO / ".local", help="state directory (default: .local)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start (or keep) the local cluster in the background")
    u.add_argument(
        "--small-node-size", default=topology.SMALL_SIZE, help="tmpfs size of the small node's kubelet root"
    )
    sub.add_parser("down", help="stop everything and remove the state")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and MODELPUSH_REGISTRY")
    a = ap.parse_args(argv)
    p = Paths(a.dir.resolve())
    if a.cmd == "up":
        up(p, a.small_node_size)
    elif a.cmd == "down":
        return down(p)
    else:
        return env(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
