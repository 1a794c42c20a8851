"""Installs Tekton's CRDs and config into a cluster and runs the pipelines controller out of cluster.

There is no webhook: objects are not defaulted or validated at admission (the controller defaults and
validates PipelineRuns itself when it reconciles them), and no conversion happens, so clients must use
`tekton.dev/v1` Pipelines/PipelineRuns and `tekton.dev/v1beta1` CustomRuns, the stored versions.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from kubernetes_asyncio import config

from hack.localcluster.procs import term_when_parent_dies
from hack.tekton import apply, manifests

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(__file__).with_name("build.sh")
# knative logs this after "Starting controllers...", once everything is up including the probes server.
READY_MESSAGE = "Probes server listening on port"
# The controller never runs a TaskRun pod here (no container runtime), but it refuses to start
# unless every image flag is set.
PLACEHOLDER_IMAGES = {
    "entrypoint-image": "example.invalid/tekton/entrypoint:unused",
    "nop-image": "example.invalid/tekton/nop:unused",
    "sidecarlogresults-image": "example.invalid/tekton/sidecarlogresults:unused",
    "workingdirinit-image": "example.invalid/tekton/workingdirinit:unused",
    "shell-image": "example.invalid/tekton/shell:unused",
    "shell-image-win": "example.invalid/tekton/shell-win:unused",
}


# knative parses METRICS_PROMETHEUS_PORT as an int16, so ports above 32767 are rejected; the kernel's
# ephemeral range starts above that, so pick from below it.
PORT_RANGE = (20000, 32767)
# knative's sharedmain always serves its health probes on :8080 (injection.HealthCheckDefaultPort, not
# configurable) and the controller exits when that port is taken.
KNATIVE_PROBES_PORT = 8080


def free_port() -> int:
    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
        return False


def build(version: str | None = None) -> Path:
    """Run hack/tekton/build.sh (a no-op when cached) and return the controller binary."""
    env = {**os.environ, "TEKTON_VERSION": version or manifests.tekton_version()}
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True, env=env)
    return Path(out.stdout.strip().splitlines()[-1])


async def install(kubeconfig: Path, version: str | None = None) -> None:
    """Apply the namespace, CRDs and config-* ConfigMaps of the release; idempotent."""
    moddir = await asyncio.to_thread(manifests.module_dir, version)
    crds = manifests.crds(moddir)
    api = await config.new_client_from_config(config_file=str(kubeconfig))
    try:
        await apply.apply_manifest(api, manifests.namespace_manifest())
        for doc in crds:
            await apply.apply_manifest(api, doc)
        await apply.wait_crds_established(api, [d["metadata"]["name"] for d in crds])
        for doc in manifests.config_maps(moddir):
            await apply.apply_manifest(api, doc)
    finally:
        await api.close()


class TektonController:
    """The Tekton pipelines controller as a local process (async `start()`/`stop()`)."""

    def __init__(self, kubeconfig: Path, workdir: Path, version: str | None = None) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.workdir = Path(workdir)
        self.version = version or manifests.tekton_version()
        self.log_path = self.workdir / "tekton-controller.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, binary: Path) -> list[str]:
        flags = [f"-{k}={v}" for k, v in PLACEHOLDER_IMAGES.items()]
        # -disable-ha: one replica, no leader election leases to wait for.
        return [str(binary), f"-kubeconfig={self.kubeconfig}", "-disable-ha", *flags]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SYSTEM_NAMESPACE": manifests.SYSTEM_NAMESPACE,
            "KUBERNETES_MIN_VERSION": "v1.28.0",
            "CONFIG_DEFAULTS_NAME": "config-defaults",
            "CONFIG_LOGGING_NAME": "config-logging",
            "CONFIG_OBSERVABILITY_NAME": "config-observability",
            "CONFIG_FEATURE_FLAGS_NAME": "feature-flags",
            "CONFIG_LEADERELECTION_NAME": "config-leader-election-controller",
            "CONFIG_SPIRE": "config-spire",
            "METRICS_DOMAIN": "tekton.dev/pipeline",
            # Every listener on its own free port so parallel clusters never collide.
            "METRICS_PROMETHEUS_HOST": "127.0.0.1",
            "METRICS_PROMETHEUS_PORT": str(free_port()),
            "PROFILING_PORT": str(free_port()),
            "PROBES_PORT": str(free_port()),
        }

    async def start(self, ready_within: float = 120.0) -> None:
        binary = await asyncio.to_thread(build, self.version)
        await install(self.kubeconfig, self.version)
        if port_in_use(KNATIVE_PROBES_PORT):
            raise RuntimeError(
                f"port {KNATIVE_PROBES_PORT} is in use; the Tekton controller (knative sharedmain) always "
                "serves health probes there and exits when it cannot"
            )
        self._spawn(binary)
        await self._wait_ready(ready_within)

    def _spawn(self, binary: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Own session, so stop() can signal the whole group; dies with the process that started it, so a
            # killed test run never leaves a controller holding :8080.
            self.proc = subprocess.Popen(
                self.argv(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
                preexec_fn=term_when_parent_dies,
            )

    async def _wait_ready(self, ready_within: float) -> None:
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tekton controller exited with {self.proc.returncode}; last log lines:\n{self.tail()}"
                )
            if READY_MESSAGE in self.log_path.read_text(errors="replace"):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"tekton controller not ready after {ready_within}s; log tail:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    async def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await asyncio.to_thread(self.proc.wait, 5)
