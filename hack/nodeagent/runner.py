"""Runs one pod's containers as local processes and reports its status like the kubelet."""

import asyncio
import base64
import calendar
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from controller.model.quantity import parse_quantity
from hack.nodeagent.envvars import expand, field_value
from hack.nodeagent.eviction import ContainerUsage, PodUsage, VolumeUsage
from hack.nodeagent.images import ImageNotAllowed, InvalidImageName, resolve_argv
from hack.nodeagent.kube import MERGE, as_dict, status_code
from hack.nodeagent.pathmap import PathMap
from hack.nodeagent.podstatus import (
    Terminated,
    container_status,
    exit_reason,
    now,
    pod_status,
    termination_message,
)
from hack.nodeagent.volumes import VolumeBuilder, VolumeNotReady, Volumes

log = logging.getLogger("nodeagent.runner")
REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
LOST_MESSAGE = "The container could not be located when the pod was terminated"


def _ephemeral(c: dict[str, Any], kind: str) -> str | None:
    return ((c.get("resources") or {}).get(kind) or {}).get("ephemeral-storage")


class PodRunner:
    def __init__(self, api: client.ApiClient, pod: dict[str, Any], state_dir: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.api = api
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.node: str = pod["spec"]["nodeName"]
        self.pod_dir = state_dir / "pods" / self.uid
        self.volume_builder = VolumeBuilder(api, state_dir)
        self.volumes = Volumes()
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.started: dict[str, str] = {}
        self.results: dict[str, Terminated] = {}
        self.init_results: dict[str, Terminated] = {}
        self.start_time: str = (pod.get("status") or {}).get("startTime") or now()
        self.final: tuple[str, str] | None = None  # (reason, message) when we killed the pod on purpose
        self.running = False
        self.finished = asyncio.Event()
        self._status_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self._event_task: asyncio.Task[None] | None = None  # keeps a reference so it is not collected

    # -- paths -------------------------------------------------------------------------------------
    def cdir(self, name: str) -> Path:
        return self.pod_dir / "containers" / name

    def scratch(self, name: str) -> Path:
        return self.cdir(name) / "rootfs"

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.key}")

    def start_lost(self) -> None:
        """For a pod that was Running under a previous agent process: its processes are gone, so report it
        Failed the way the kubelet reports containers it cannot find, rather than silently re-running it."""

        async def report() -> None:
            try:
                await self._patch(self._failed_status(None, None))
            finally:
                self.finished.set()

        self.task = asyncio.create_task(report(), name=f"lost pod {self.key}")

    async def _run(self) -> None:
        try:
            await self._run_inner()
        except asyncio.CancelledError:
            self._kill_all(signal.SIGKILL)
            raise
        except Exception as e:  # a bug here must not take the agent down; report it on the pod instead
            log.exception("pod runner failed", extra={"pod": self.key})
            self._kill_all(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await self._patch(self._failed_status("Error", f"local node agent: {e}"))
        finally:
            self.running = False
            self._cleanup_ephemeral()
            self.finished.set()

    async def _run_inner(self) -> None:
        spec = self.pod["spec"]
        containers: list[dict[str, Any]] = spec["containers"]
        inits: list[dict[str, Any]] = spec.get("initContainers") or []
        await self._patch(self._pending_status(("ContainerCreating", "")))
        try:
            argvs = {
                c["name"]: resolve_argv(c["image"], c.get("command"), c.get("args"))
                for c in inits + containers
            }
        except ImageNotAllowed as e:
            reason = "InvalidImageName" if isinstance(e, InvalidImageName) else "ErrImagePull"
            await self._patch(self._pending_status((reason, str(e))))
            log.info("image not allowed", extra={"pod": self.key, "error": str(e)})
            await asyncio.Event().wait()  # stays Pending until deleted, like a pod stuck in ErrImagePull
            return
        for attempt in range(10**6):
            try:
                self.volumes = await self.volume_builder.prepare(self.pod, self.pod_dir)
                break
            except VolumeNotReady as e:
                if attempt == 0 or attempt % 15 == 0:
                    log.info("volume not ready", extra={"pod": self.key, "error": str(e)})
                    await self._patch(self._pending_status(("ContainerCreating", f"MountVolume: {e}")))
                await asyncio.sleep(2)
        deadline = self._deadline()
        for c in inits:
            await self._start(c, argvs[c["name"]])
            await self._wait(deadline)
            r = self.results.pop(c["name"])
            self.init_results[c["name"]] = r
            if r.exit_code != 0 or self.final:
                await self._finish(containers)
                return
        self.running = True
        for c in containers:
            await self._start(c, argvs[c["name"]])
        await self._patch(self._running_status())
        await self._wait(deadline)
        await self._finish(containers)

    def _deadline(self) -> float | None:
        ads = self.pod["spec"].get("activeDeadlineSeconds")
        if ads is None:
            return None
        started = calendar.timegm(time.strptime(self.start_time, "%Y-%m-%dT%H:%M:%SZ"))
        return time.monotonic() + (started + int(ads) - time.time())

    async def _wait(self, deadline: float | None) -> None:
        waits = [
            asyncio.create_task(self._reap(n, p)) for n, p in self.procs.items() if n not in self.results
        ]
        if not waits:
            return
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, pending = await asyncio.wait(waits, timeout=timeout)
        if pending:
            self.final = self.final or ("DeadlineExceeded", DEADLINE_MESSAGE)
            log.info("active deadline exceeded", extra={"pod": self.key})
            self._kill_all(signal.SIGKILL)
            await asyncio.wait(pending)

    async def _reap(self, name: str, proc: asyncio.subprocess.Process) -> None:
        rc = await proc.wait()
        # The main process is gone; what it left in its group goes too (a container dies as a whole).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        sig = -rc if rc < 0 else None
        code = 128 + sig if sig else rc
        c = next(x for x in self._all_containers() if x["name"] == name)
        file_text = ""
        with contextlib.suppress(OSError):
            file_text = (self.cdir(name) / "termination-log").read_text(errors="replace")
        tail = ""
        with contextlib.suppress(OSError):
            with open(self.cdir(name) / "log", "rb") as f:  # noqa: ASYNC230 - small local read
                f.seek(max(0, f.seek(0, 2) - 8192))
                tail = f.read().decode(errors="replace")
        msg = termination_message(file_text, tail, code, c.get("terminationMessagePolicy") or "File")
        self.results[name] = Terminated(code, exit_reason(code), msg, self.started[name], now())

    async def _start(self, c: dict[str, Any], argv: list[str]) -> None:
        name = c["name"]
        scratch = self.scratch(name)
        scratch.mkdir(parents=True, exist_ok=True)
        term = self.cdir(name) / "termination-log"
        term.touch()
        mounts = {c.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH: str(term)}
        for vm in c.get("volumeMounts") or []:
            d = self.volumes.dirs.get(vm["name"])
            if d is not None:
                local = d / vm["subPath"] if vm.get("subPath") else d
                local.mkdir(parents=True, exist_ok=True)
                mounts[vm["mountPath"]] = str(local)
        pm = PathMap(mounts)
        base = self._base_env(scratch)
        spec_env = await self._spec_env(c, base)
        env = base | spec_env
        argv = pm.rewrite_all([expand(a, env) for a in argv])
        # Only the pod's own values name mount paths; the agent's (PATH into the checkout, scratch dirs)
        # are host paths already and must not be rewritten, e.g. a checkout under /tmp with /tmp mounted.
        env = base | {k: pm.rewrite(v) for k, v in spec_env.items()}
        cwd = pm.local(c["workingDir"]) if c.get("workingDir") else str(scratch)
        Path(cwd).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - local, instant
        self.started[name] = now()
        logf = open(self.cdir(name) / "log", "ab")  # noqa: ASYNC230 - handed to the child
        try:
            self.procs[name] = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logf,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            log.info(
                "container started", extra={"pod": self.key, "container": name, "pid": self.procs[name].pid}
            )
        except OSError as e:
            # What a runtime reports when the entrypoint cannot be executed.
            ts = now()
            self.results[name] = Terminated(128, "StartError", f"exec: {argv[0]!r}: {e.strerror}", ts, ts)
            self.procs.pop(name, None)
        finally:
            logf.close()

    def _base_env(self, scratch: Path) -> dict[str, str]:
        """What the agent gives every container: the checkout's venv and the scratch dir (host paths)."""
        return {
            "PATH": f"{REPO}/.venv/bin:{SYSTEM_PATH}",
            "PYTHONPATH": str(REPO),
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "HOSTNAME": self.name,
            "LANG": "C.UTF-8",
        }

    async def _spec_env(self, c: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
        """The container's envFrom and env, expanded against `base` and each other (not yet path-mapped)."""
        env: dict[str, str] = {}
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            if "configMapRef" in ef:
                data = await self._configmap_data(
                    ef["configMapRef"]["name"], ef["configMapRef"].get("optional")
                )
            else:
                data = await self._secret_data(ef["secretRef"]["name"], ef["secretRef"].get("optional"))
            env |= {prefix + k: v for k, v in data.items()}
        for e in c.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = expand(e.get("value", ""), base | env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[e["name"]] = field_value(self.pod, vf["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                env[e["name"]] = (await self._secret_data(ref["name"], ref.get("optional"))).get(
                    ref["key"], ""
                )
            elif "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                env[e["name"]] = (await self._configmap_data(ref["name"], ref.get("optional"))).get(
                    ref["key"], ""
                )
            elif "resourceFieldRef" in vf:
                res = vf["resourceFieldRef"]["resource"]
                kind, _, rname = res.partition(".")
                env[e["name"]] = str(((c.get("resources") or {}).get(kind) or {}).get(rname, "0"))
        return env

    async def _secret_data(self, name: str, optional: bool | None) -> dict[str, str]:
        try:
            s = await as_dict(self.core.read_namespaced_secret(name, self.namespace, _preload_content=False))
        except client.ApiException as e:
            if status_code(e) == 404 and optional:
                return {}
            raise
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (s.get("data") or {}).items()}

    async def _configmap_data(self, name: str, optional: bool | None) -> dict[str, str]:
        try:
            c = await as_dict(
                self.core.read_namespaced_config_map(name, self.namespace, _preload_content=False)
            )
        except client.ApiException as e:
            if status_code(e) == 404 and optional:
                return {}
            raise
        return dict(c.get("data") or {})

    # -- control from the agent --------------------------------------------------------------------
    def evict(self, message: str) -> None:
        if self.final is None:
            self.final = ("Evicted", message)
            log.info("evicting pod", extra={"pod": self.key, "reason_message": message})
            self._event_task = asyncio.create_task(self._event("Warning", "Evicted", message))
        self._kill_all(signal.SIGKILL)

    async def _event(self, type_: str, reason: str, message: str) -> None:
        """Best-effort core/v1 Event on the pod, as the kubelet records evictions."""
        ts = now()
        body = {
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
        }
        try:
            await self.core.create_namespaced_event(self.namespace, body, _preload_content=False)
        except (client.ApiException, OSError, aiohttp.ClientError) as e:
            log.info("event not recorded", extra={"pod": self.key, "error": str(e)[:200]})

    async def terminate(self, grace: float) -> None:
        """Graceful stop for a deleted pod: SIGTERM, then SIGKILL after the grace period."""
        if self.task is None or self.finished.is_set():
            return
        if not self.procs:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            return
        self._kill_all(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.finished.wait(), timeout=max(grace, 0.0))
        except TimeoutError:
            self._kill_all(signal.SIGKILL)
            await self.finished.wait()

    def _kill_all(self, sig: int) -> None:
        for p in self.procs.values():
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)

    # -- usage for the eviction manager ------------------------------------------------------------
    def usage_paths(self) -> tuple[dict[str, list[Path]], dict[str, tuple[Path, int | None]]]:
        """Per container: its writable layer and its log (the kubelet counts both), and the emptyDirs."""
        cs = {n: [self.scratch(n), self.cdir(n) / "log"] for n in self.procs}
        return cs, dict(self.volumes.ephemeral)

    def usage(self, container_bytes: dict[str, int], volume_bytes: dict[str, int]) -> PodUsage:
        cs = []
        for c in self.pod["spec"]["containers"]:
            lim, req = _ephemeral(c, "limits"), _ephemeral(c, "requests")
            cs.append(
                ContainerUsage(
                    name=c["name"],
                    used=container_bytes.get(c["name"], 0),
                    limit=parse_quantity(lim) if lim else None,
                    request=parse_quantity(req) if req else None,
                    limit_text=lim,
                )
            )
        vs = [VolumeUsage(n, volume_bytes.get(n, 0), lim) for n, (_, lim) in self.volumes.ephemeral.items()]
        return PodUsage(self.key, cs, vs)

    # -- status ------------------------------------------------------------------------------------
    def _all_containers(self) -> list[dict[str, Any]]:
        return (self.pod["spec"].get("initContainers") or []) + self.pod["spec"]["containers"]

    def _cid(self, name: str) -> str:
        p = self.procs.get(name)
        return f"local://{p.pid}" if p else ""

    def _pending_status(self, waiting: tuple[str, str]) -> dict[str, Any]:
        cs = [container_status(c, waiting=waiting) for c in self.pod["spec"]["containers"]]
        return pod_status(
            self.pod, phase="Pending", container_statuses=cs, start_time=self.start_time, started=False
        )

    def _running_status(self) -> dict[str, Any]:
        cs = []
        for c in self.pod["spec"]["containers"]:
            n = c["name"]
            if n in self.results:
                cs.append(container_status(c, container_id=self._cid(n), terminated=self.results[n]))
            else:
                cs.append(container_status(c, container_id=self._cid(n), running_since=self.started.get(n)))
        ready = all(c["name"] not in self.results for c in self.pod["spec"]["containers"])
        return pod_status(
            self.pod,
            phase="Running",
            container_statuses=cs,
            init_statuses=self._init_statuses(),
            start_time=self.start_time,
            ready=ready,
        )

    def _init_statuses(self) -> list[dict[str, Any]]:
        out = []
        for c in self.pod["spec"].get("initContainers") or []:
            r = self.init_results.get(c["name"])
            out.append(container_status(c, container_id=self._cid(c["name"]), terminated=r))
        return out

    def _failed_status(self, reason: str | None, message: str | None) -> dict[str, Any]:
        cs = []
        for c in self.pod["spec"]["containers"]:
            r = self.results.get(c["name"])
            if r is None:
                ts = now()
                r = Terminated(137, "ContainerStatusUnknown", LOST_MESSAGE, ts, ts)
            cs.append(container_status(c, container_id=self._cid(c["name"]), terminated=r))
        return pod_status(
            self.pod,
            phase="Failed",
            container_statuses=cs,
            init_statuses=self._init_statuses(),
            start_time=self.start_time,
            reason=reason,
            message=message,
        )

    async def _finish(self, containers: list[dict[str, Any]]) -> None:
        if self.final is not None:
            st = self._failed_status(*self.final)
        elif any(r.exit_code != 0 for r in self.init_results.values()):
            st = self._failed_status(None, None)
        else:
            ok = all(
                self.results.get(c["name"]) and self.results[c["name"]].exit_code == 0 for c in containers
            )
            if ok:
                cs = [
                    container_status(c, container_id=self._cid(c["name"]), terminated=self.results[c["name"]])
                    for c in containers
                ]
                st = pod_status(
                    self.pod,
                    phase="Succeeded",
                    container_statuses=cs,
                    init_statuses=self._init_statuses(),
                    start_time=self.start_time,
                )
            else:
                st = self._failed_status(None, None)
        await self._patch(st)
        log.info("pod finished", extra={"pod": self.key, "phase": st["phase"], "reason": st.get("reason")})

    async def _patch(self, status: dict[str, Any]) -> None:
        # uid in the patch makes it a precondition: never write onto a new pod that reuses the name.
        body = {"metadata": {"uid": self.uid}, "status": status}
        async with self._status_lock:
            for attempt in range(6):  # transient API errors must not leave a finished pod "Running"
                try:
                    got = await as_dict(
                        self.core.patch_namespaced_pod_status(
                            self.name, self.namespace, body, _content_type=MERGE, _preload_content=False
                        )
                    )
                    self.pod["status"] = got.get("status", {})
                    return
                except client.ApiException as e:
                    if status_code(e) in (404, 409, 422):
                        log.info("pod status not written", extra={"pod": self.key, "status": status_code(e)})
                        return
                    if attempt == 5:
                        raise
                except (OSError, aiohttp.ClientError, TimeoutError):
                    if attempt == 5:
                        raise
                await asyncio.sleep(0.5 * 2**attempt)

    def _cleanup_ephemeral(self) -> None:
        # A dead container's writable layer and the pod's emptyDirs are freed (the disk comes back).
        for c in self._all_containers():
            shutil.rmtree(self.scratch(c["name"]), ignore_errors=True)
        shutil.rmtree(self.pod_dir / "volumes", ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.pod_dir, ignore_errors=True)
