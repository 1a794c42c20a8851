"""Everything the demo runs: the local cluster on real nodes (control plane, registry, a normal and a small
node, local-path provisioner), the locally built images, Tekton installed in-cluster from its release
manifests, and the controller (a host process, as `make run`). Processes are recorded in the cluster's pid
dir, so one `stop()` (or `python -m hack.demo --down`) removes them all and restores the host."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hack.images import Images, ensure_images
from hack.localcluster import LocalCluster, topology
from hack.localcluster.procs import alive, read_pid
from hack.localcluster.realcluster import RealCluster
from hack.localcluster.rest import Rest
from hack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
NODE = topology.NODE
SMALL_NODE = topology.SMALL_NODE
SMALL_LABEL = topology.SMALL_LABEL
SMALL_TAINT = topology.SMALL_TAINT


@dataclass
class Stack:
    workdir: Path
    keep: bool = False
    rc: RealCluster | None = None
    images: Images | None = None
    controller_port: int = 0

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "cluster"

    @property
    def registry(self) -> str:
        return self.rc.registry if self.rc else ""

    @property
    def kubeconfig(self) -> Path:
        assert self.rc is not None
        return self.rc.kubeconfig

    @property
    def logdir(self) -> Path:
        return self.cluster_dir / "logs"

    def rest(self) -> Rest:
        assert self.rc is not None
        return self.rc.local.rest()

    # -- start ---------------------------------------------------------------------------------------
    def start_cluster(self, small_size: str) -> None:
        # die_with_parent: without --keep nothing may outlive the demo, even if it is killed with SIGKILL.
        self.rc = RealCluster.at(
            self.cluster_dir, die_with_parent=not self.keep, nodes=topology.nodes(small_size)
        ).start()

    def build_images(self) -> Images:
        self.images = ensure_images(self.registry)
        return self.images

    def start_tekton(self) -> None:
        assert self.rc is not None and self.images is not None
        self.rc.install_tekton()

    def start_controller(self, timeout: float = 90.0) -> None:
        assert self.rc is not None and self.images is not None
        self.controller_port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MODELPUSH_METRICS_HOST": "127.0.0.1",
            "MODELPUSH_WORK_IMAGE": self.images.project.ref,
            "MODELPUSH_INSECURE_REGISTRIES": self.registry,
            # buildah needs a privileged container (it still runs as the image's non-root user)
            "MODELPUSH_ALLOW_PRIVILEGED_BUILDAH": "true",
            # The demo shows the eviction itself; a retry with a larger request could never fit the small
            # node, so report the first eviction as the outcome.
            "MODELPUSH_RETRY_ON_EVICTION": "false",
            # A crowded node's CPU share for the compatibility pods: the kubelet checks ephemeral-storage
            # use every 10 s, and an unthrottled buildah stages and pushes a demo-sized model faster than
            # that (a real 48 GB model takes minutes). The eviction itself stays the kubelet's.
            "MODELPUSH_COMPAT_CPU_REQUEST": "100m",
            "MODELPUSH_COMPAT_CPU_LIMIT": "100m",
        }
        argv = [sys.executable, "-m", "controller", "--kubeconfig", str(self.kubeconfig)]
        argv += ["--metrics-port", str(self.controller_port), "--no-leader-election"]
        self.rc.local.spawn("controller", argv, env)
        url = f"http://127.0.0.1:{self.controller_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = read_pid(self.rc.local.piddir, "controller")
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
    def stop(self) -> list[str]:
        """Stops every process the demo started and restores the host; returns what could not be removed."""
        return (self.rc.local if self.rc else LocalCluster(self.cluster_dir)).stop()
