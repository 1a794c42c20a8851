"""End-to-end helpers: the controller as a real process against the session's real-node cluster.

Each test starts its own controller(s) as host processes (as `make run` does) scoped to the test's
namespace (MODELPUSH_NAMESPACES), so tests are isolated from each other and from the other users of a
shared cluster, and leader election uses a Lease in that namespace. Their work pods run on the real
kubelets as containers of the project image built from the Containerfile (`work_image`), as its non-root
user with a read-only root filesystem. Everything a work pod must reach (registries, the blackhole, proxies)
listens on the pod network's gateway (`gateway`), never on 127.0.0.1, which in a pod is the pod itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client

from hack.images import ensure
from hack.localcluster.realcluster import RealCluster
from hack.ports import ATTEMPTS, free_port, in_use
from hack.registry import LocalRegistry
from tests.fixtures.cluster import wait_for
from tests.support.loopback import HangServer

REPO = Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv" / "bin" / "python")
GROUP, VERSION, PLURAL = "tekton.dev", "v1beta1", "customruns"
# The CustomRun workspace `model` on PVC `model` (see model_pvc); sources read it as dir:///workspace/model.
WS = [{"name": "model", "persistentVolumeClaim": {"claimName": "model"}}]

pytestmark = pytest.mark.cluster


class ControllerProcess:
    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": str(REPO),
            "MODELPUSH_NAMESPACES": namespace,
            "MODELPUSH_METRICS_HOST": "127.0.0.1",
            "MODELPUSH_METRICS_PORT": str(self.port),
            "MODELPUSH_LEADER_ELECTION": "false",
            "MODELPUSH_LEASE_NAMESPACE": namespace,
            "MODELPUSH_LOG_LEVEL": "DEBUG",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [PY, "-m", "controller"], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    async def wait_ready(self, limit: float = 60) -> None:
        async def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.logs()[-3000:]
            try:
                async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, limit, "controller /readyz")

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.port}/metrics") as r:
            return await r.text()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def work_image(real_cluster: RealCluster) -> str:
    """The project image built from the Containerfile (cached by content), in the cluster's registry."""
    return str(ensure(["model-image-push"], real_cluster.registry)["model-image-push"].ref)


@pytest.fixture
async def controllers(
    real_cluster: RealCluster,
    real_namespace: str,
    tmp_path: Path,
    gateway_registry: LocalRegistry,
    work_image: str,
) -> AsyncIterator[Callable[..., Any]]:
    """`await start(**env)` -> a ready ControllerProcess for this test's namespace; all stopped at the end."""
    started: list[ControllerProcess] = []

    async def start(wait: bool = True, **env: str) -> ControllerProcess:
        # a short grace for a missing Secret/CA ConfigMap keeps the failure tests quick; tests of the
        # grace itself pass their own value. buildah needs its privileged container on a real kubelet
        # (tests/workpods shows the unprivileged failure); tests of the refusal pass their own value.
        env = {
            "MODELPUSH_WORK_IMAGE": work_image,
            "MODELPUSH_INSECURE_REGISTRIES": gateway_registry.host,
            "MODELPUSH_MISSING_OBJECT_GRACE_SECONDS": "2",
            "MODELPUSH_ALLOW_PRIVILEGED_BUILDAH": "true",
            **env,
        }
        for attempt in range(1, ATTEMPTS + 1):
            log = tmp_path / f"controller-{len(started)}.log"
            ctl = ControllerProcess(real_cluster.kubeconfig, real_namespace, log, env)
            started.append(ctl.start())
            if not wait:
                return ctl
            try:
                await ctl.wait_ready()
                return ctl
            except AssertionError:
                ctl.stop()  # its metrics port was taken between free_port() and its bind: a fresh one
                if attempt == ATTEMPTS or not in_use(log):
                    raise
        raise AssertionError("unreachable")

    yield start
    failures = []
    for ctl in started:  # every controller is stopped even when stopping another one failed
        try:
            ctl.stop()
        except Exception as err:  # reported below, after the others stopped
            failures.append(err)
        sys.stderr.write(f"--- {ctl.log_path} (tail)\n{ctl.logs()[-4000:]}\n")
    if failures:
        raise failures[0]


@pytest.fixture
def crs(real_api: client.ApiClient, real_namespace: str) -> CustomRuns:
    return CustomRuns(real_api, real_namespace)


class CustomRuns:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.co = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    async def create(
        self,
        name: str,
        params: dict[str, Any],
        workspaces: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CustomRun",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                **(
                    {}
                    if "customSpec" in spec
                    else {"customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"}}
                ),
                "params": [{"name": k, "value": v} for k, v in params.items()],
                "workspaces": workspaces or [],
                **spec,
            },
        }
        return await self.co.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.co.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.co.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    async def wait_done(self, name: str, limit: float = 180) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            run = await self.get(name)
            conds = (run.get("status") or {}).get("conditions") or []
            return run if conds and conds[0].get("status") in ("True", "False") else None

        return await wait_for(done, limit, f"CustomRun {self.ns}/{name} done")

    async def wait_status(
        self, name: str, check: Callable[[dict[str, Any]], bool], limit: float = 60
    ) -> dict:
        async def ok() -> dict[str, Any] | None:
            run = await self.get(name)
            return run if check(run.get("status") or {}) else None

        return await wait_for(ok, limit, f"CustomRun {self.ns}/{name} status")

    async def pods(self, run: str | None = None) -> list[dict[str, Any]]:
        sel = "app.kubernetes.io/managed-by=model-image-push"
        if run:
            sel += f",modelpush.dev/customrun={run}"
        resp = await self.core.list_namespaced_pod(self.ns, label_selector=sel, _preload_content=False)
        try:
            return json.loads(await resp.read())["items"]
        finally:
            resp.release()

    async def events(self, name: str) -> list[dict[str, Any]]:
        resp = await self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={name}", _preload_content=False
        )
        try:
            return json.loads(await resp.read())["items"]
        finally:
            resp.release()


async def install_modelimagepush_crd(kube_api: client.ApiClient) -> None:
    """The optional ModelImagePush CRD (named defaults), created once and waited for until Established."""
    ext = client.ApiextensionsV1Api(kube_api)
    crd = yaml.safe_load((REPO / "config" / "crd" / "modelimagepushes.yaml").read_text())
    try:
        await ext.create_custom_resource_definition(crd)
    except client.ApiException as e:
        if e.status != 409:
            raise

    async def established() -> bool:
        obj = await ext.read_custom_resource_definition(crd["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in obj.status.conditions or [])

    await wait_for(established, 60, "ModelImagePush CRD established")


def cond(run: dict[str, Any]) -> dict[str, Any]:
    return run["status"]["conditions"][0]


def results(run: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["value"] for r in run["status"].get("results") or []}


def write_model(directory: Path, size: int = 256 * 1024, files: int = 3) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (directory / f"shard-{i}.bin").write_bytes(os.urandom(size))
    (directory / "config.json").write_text('{"arch": "tiny"}')


async def model_pvc(new_pvc: Callable[..., Any], namespace: str, **model: int) -> Path:
    """PVC `model` (the workspace in WS; `new_pvc` is the real_pvc fixture) holding a model made by
    write_model; returns its host directory."""
    d = await new_pvc(namespace, "model")
    write_model(d, **model)
    return d


async def push_dir(directory: Path, image: str, insecure: str) -> dict[str, Any]:
    """Seed an image with the work-pod program itself (contract A)."""
    proc = await asyncio.create_subprocess_exec(
        PY,
        "-m",
        "controller.push",
        "build",
        "--context",
        str(directory),
        "--image",
        image,
        "--insecure-registry",
        insecure,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


async def skopeo_digest(image: str, creds: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "skopeo",
        "inspect",
        "--tls-verify=false",
        *(["--creds", creds] if creds else []),
        "--raw",
        f"docker://{image}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    import hashlib

    return "sha256:" + hashlib.sha256(out).hexdigest()


def now() -> float:
    return time.monotonic()


@pytest.fixture
async def blackhole(gateway: str) -> AsyncIterator[str]:
    """A 'registry' on the gateway that accepts connections and never answers: keeps a copy pod busy."""
    server = HangServer(gateway)
    await server.start()
    try:
        yield server.host
    finally:
        await server.stop()


def stuck_copy(blackhole: str, registry: LocalRegistry) -> dict[str, str]:
    """Params of a copy from the blackhole: its pod runs until the run is cancelled or times out."""
    return {
        "source": f"docker://{blackhole}/a/b:1",
        "image": f"{registry.host}/x/y:1",
        "insecure-registries": blackhole,
    }


async def wait_pod_phase(crs: CustomRuns, run: str, phase: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        pods = await crs.pods(run)
        return next((p for p in pods if (p.get("status") or {}).get("phase") == phase), None)

    return await wait_for(check, 180, f"a {phase} pod of {run}")
