"""python -m hack.nodeagent --kubeconfig K (--node NAME [--ephemeral 2Gi] [--label k=v] [--taint k=v:Effect]
| --config nodes.json) --state-dir D"""

import argparse
import asyncio
import json
from pathlib import Path

from hack.nodeagent import logs
from hack.nodeagent.agent import run_agent
from hack.nodeagent.config import AgentConfig, NodeConfig, parse_label


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, AgentConfig]:
    p = argparse.ArgumentParser(prog="python -m hack.nodeagent", description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--node", help="register one node with this name (see --ephemeral/--label/--taint)")
    p.add_argument("--ephemeral", default="10Gi", help="allocatable ephemeral-storage of --node")
    p.add_argument("--cpu", default="4")
    p.add_argument("--memory", default="8Gi")
    p.add_argument("--label", action="append", default=[], help="k=v (repeatable)")
    p.add_argument("--taint", action="append", default=[], help="k=v:NoSchedule (repeatable)")
    p.add_argument(
        "--config", type=Path, help='JSON {"nodes": [{"name":..,"ephemeral":..,...}]} for several nodes'
    )
    p.add_argument(
        "--no-bind-pvcs", action="store_true", help="do not bind pending PVCs (another agent does)"
    )
    a = p.parse_args(argv)
    nodes: list[NodeConfig] = []
    if a.config:
        nodes += AgentConfig.model_validate(json.loads(a.config.read_text())).nodes
    if a.node:
        labels = dict(parse_label(x) for x in a.label)
        nodes.append(
            NodeConfig(
                name=a.node, ephemeral=a.ephemeral, cpu=a.cpu, memory=a.memory, labels=labels, taints=a.taint
            )
        )
    if not nodes:
        p.error("give --node or --config")
    return a, AgentConfig(nodes=nodes)


def main(argv: list[str] | None = None) -> None:
    a, cfg = parse_args(argv)
    logs.setup()
    a.state_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_agent(a.kubeconfig, cfg, a.state_dir.resolve(), bind_pvcs=not a.no_bind_pvcs))


if __name__ == "__main__":
    main()
