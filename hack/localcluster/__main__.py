"""python -m hack.localcluster up [--node-ephemeral 10Gi] | down | env   (state in .local/ of the repo)

`up` starts, in the background and idempotently: the control plane, one node agent (node `local-node-1`)
and a registry (hack.registry); writes .local/kubeconfig and .local/registry (host:port).
`down` stops everything `up` started and removes its state. `env` prints shell exports.
"""

import argparse
import shutil
import sys
from pathlib import Path

from hack.localcluster.binaries import REPO
from hack.localcluster.cluster import LocalCluster
from hack.localcluster.procs import alive, read_pid

NODE = "local-node-1"


class Paths:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = root / "cluster"
        self.node = root / "node"
        self.registry_data = root / "registry-data"
        self.kubeconfig = root / "kubeconfig"
        self.registry = root / "registry"


def up(p: Paths, node_ephemeral: str) -> None:
    lc = LocalCluster(p.cluster)
    lc.start()
    lc.start_node_agent([{"name": NODE, "ephemeral": node_ephemeral}], p.node)
    pid = read_pid(lc.piddir, "registry")
    if pid is None or not alive(pid) or not p.registry.exists():
        p.registry.write_text(lc.start_registry(p.registry_data) + "\n")
    shutil.copyfile(lc.kubeconfig, p.kubeconfig)
    p.kubeconfig.chmod(0o600)
    print(f"local cluster up: apiserver {lc.server}, node {NODE} (ephemeral-storage {node_ephemeral})")
    print(f"registry: {p.registry.read_text().strip()} (plain HTTP)")
    print(f"logs: {lc.logdir}")
    print("use it:")
    print(f"  export KUBECONFIG={p.kubeconfig}")
    print(f"  export MODELPUSH_REGISTRY=$(cat {p.registry})")
    print("  eval $(python -m hack.localcluster env)   # the same, in one go")
    print("  make run                                  # the controller against it")
    print("stop it: make cluster-down")


def down(p: Paths) -> None:
    LocalCluster(p.cluster).stop()
    for d in (p.cluster, p.node, p.registry_data):
        shutil.rmtree(d, ignore_errors=True)
    for f in (p.kubeconfig, p.registry):
        f.unlink(missing_ok=True)
    print("local cluster down")


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
    u.add_argument("--node-ephemeral", default="10Gi", help="node allocatable ephemeral-storage")
    sub.add_parser("down", help="stop everything and remove the state")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and MODELPUSH_REGISTRY")
    a = ap.parse_args(argv)
    p = Paths(a.dir.resolve())
    if a.cmd == "up":
        up(p, a.node_ephemeral)
    elif a.cmd == "down":
        down(p)
    else:
        return env(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
