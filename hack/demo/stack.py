"""Everything the demo runs: control plane, node agent (a normal and a small node), registry, Tekton (if it
starts) and the controller, all as local processes recorded in the cluster's pid dir, so one `stop()`
(or `python -m hack.demo --down`) removes them all."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hack.localcluster import LocalCluster
from hack.localcluster.procs import alive, read_pid, record_pid
from hack.localcluster.rest import Rest
from hack.ports import free_port
from hack.tekton.launcher import TektonController

REPO = Path(__file__).resolve().parents[2]
NODE = "local-node-1"
SMALL_NODE = "local-small"
SMALL_LABEL = ("modelpush.dev/node-size", "small")
SMALL_TAINT_KEY = "modelpush.dev/small"


def nodes(small_ephemeral: str) -> list[dict[str, Any]]:
    return [
        {"name": NODE, "ephemeral": "10Gi"},
        {
            "name": SMALL_NODE,
            "ephemeral": small_ephemeral,
            "labels": {SMALL_LABEL[0]: SMALL_LABEL[1]},
            "taints": [f"{SMALL_TAINT_KEY}=true:NoSchedule"],
        },
    ]


@dataclass
class Stack:
    workdir: Path
    keep: bool = False
    cluster: LocalCluster | None = None
    registry: str = ""
    tekton: bool = False
    tekton_error: str = ""
    controller_port: int = 0

    @property
    def state_dir(self) -> Path:
        return self.workdir / "node"

    @property
    def kubeconfig(self) -> Path:
        assert self.cluster is not None
        return self.cluster.kubeconfig

    @property
    def logdir(self) -> Path:
        return self.workdir / "cluster" / "logs"

    def rest(self) -> Rest:
        assert self.cluster is not None
        return self.cluster.rest()

    # -- start ---------------------------------------------------------------------------------------
    def start_cluster(self, small_ephemeral: str) -> None:
        # die_with_parent: without --keep nothing may outlive the demo, even if it is killed with SIGKILL.
        self.cluster = LocalCluster(self.workdir / "cluster", die_with_parent=not self.keep)
        self.cluster.start()
        self.cluster.start_node_agent(nodes(small_ephemeral), self.state_dir)

    def start_registry(self) -> None:
        assert self.cluster is not None
        self.registry = self.cluster.start_registry(self.workdir / "registry-data")

    def start_tekton(self, ready_within: float = 180.0) -> bool:
        """Tekton's CRDs, config and controller; False (with `tekton_error`) when it cannot start here."""
        assert self.cluster is not None
        ctl = TektonController(self.kubeconfig, self.workdir / "tekton")
        try:
            asyncio.run(ctl.start(ready_within=ready_within))
        except BaseException as e:
            # Also on Ctrl-C: the process may exist before its pid is recorded below.
            if ctl.proc is not None and ctl.proc.poll() is None:
                asyncio.run(ctl.stop())
            if not isinstance(e, Exception):
                raise
            self.tekton_error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return False
        assert ctl.proc is not None
        # Recorded like the cluster's own processes, so stop() and `--down` stop it too.
        record_pid(self.cluster.piddir, "tekton", ctl.proc.pid)
        self.tekton = True
        return True

    def start_controller(self, timeout: float = 90.0) -> None:
        assert self.cluster is not None
        self.controller_port = free_port()  # never 8080: Tekton's probes own that port
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MODELPUSH_METRICS_HOST": "127.0.0.1",
            "MODELPUSH_INSECURE_REGISTRIES": self.registry,
            # The demo shows the eviction itself; a retry with a larger request could never fit the small
            # node, so report the first eviction as the outcome.
            "MODELPUSH_RETRY_ON_EVICTION": "false",
        }
        argv = [sys.executable, "-m", "controller", "--kubeconfig", str(self.kubeconfig)]
        argv += ["--metrics-port", str(self.controller_port), "--no-leader-election"]
        self.cluster.spawn("controller", argv, env)
        url = f"http://127.0.0.1:{self.controller_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = read_pid(self.cluster.piddir, "controller")
            if pid is None or not alive(pid):
                raise RuntimeError(f"the controller exited; see {self.logdir / 'controller.log'}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the controller was not ready after {timeout:.0f}s; see its log")

    # -- stop ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stops every process the demo started (extras first, then the control plane)."""
        (self.cluster or LocalCluster(self.workdir / "cluster")).stop()
