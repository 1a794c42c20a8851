"""Follows a PipelineRun (or a lone CustomRun) and its work pods: a live line per run on a TTY, plain log
lines otherwise; samples each pod's ephemeral-storage use the way the kubelet measures it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from hack.demo import report
from hack.demo.kube import Kube, Obj, condition, done, results
from hack.localcluster.rest import Rest


@dataclass
class RunView:
    task: str  # pipeline task name (or the demo's label for a lone CustomRun)
    name: str  # CustomRun or TaskRun name
    kind: str = "CustomRun"
    label: str = ""  # what the progress line shows (default: the task name)
    run: Obj | None = None
    pod: str = ""
    uid: str = ""
    node: str = ""
    pod_phase: str = ""
    requested: str = ""  # the pod's ephemeral-storage request
    bytes_done: int | None = None
    bytes_total: int | None = None
    rate: float | None = None
    peak_use: int = 0  # largest disk use seen outside PVCs (scratch, emptyDirs, logs)

    @property
    def reason(self) -> str:
        return str(condition(self.run).get("reason") or "Pending")

    @property
    def phase(self) -> str:
        return f"{self.reason} (pod {self.pod_phase})" if self.pod_phase else self.reason


class Sampler:
    """A thread reading each watched pod's ephemeral-storage use from its kubelet's stats summary (through
    the apiserver's node proxy) every `every` seconds: the figure the kubelet's eviction manager uses."""

    def __init__(self, rest: Rest, every: float = 1.0) -> None:
        self.rest = rest
        self.every = every
        self.peaks: dict[str, int] = {}
        self.nodes: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stats-sampler", daemon=True)

    def watch(self, uid: str, node: str) -> None:
        with self._lock:
            self.peaks.setdefault(uid, 0)
            if node:
                self.nodes.add(node)

    def peak(self, uid: str) -> int:
        with self._lock:
            return self.peaks.get(uid, 0)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                nodes = sorted(self.nodes)
            for node in nodes:
                for uid, used in pod_storage(self.rest, node).items():
                    with self._lock:
                        if uid in self.peaks:
                            self.peaks[uid] = max(self.peaks[uid], used)


def pod_storage(rest: Rest, node: str) -> dict[str, int]:
    """Pod uid -> ephemeral-storage bytes in use (emptyDirs, writable layer, logs), from the kubelet."""
    try:
        code, summary = rest.request("GET", f"/api/v1/nodes/{node}/proxy/stats/summary")
    except OSError:
        return {}
    if code != 200 or not isinstance(summary, dict):
        return {}
    out: dict[str, int] = {}
    for pod in summary.get("pods") or []:
        used = (pod.get("ephemeral-storage") or {}).get("usedBytes")
        if used is not None:
            out[pod["podRef"]["uid"]] = int(used)
    return out


def last_progress(log: str) -> Obj | None:
    """The newest `{"event": "progress", ...}` line in a work pod's log (contract A)."""
    for line in reversed(log.splitlines()):
        if '"progress"' not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("event") == "progress":
            return obj
    return None


class Watcher:
    def __init__(self, kube: Kube, ns: str, out: TextIO, tty: bool, sampler: Sampler):
        self.kube = kube
        self.ns = ns
        self.out = out
        self.tty = tty
        self.sampler = sampler
        self._shown = 0  # lines drawn by the last TTY frame
        self._last: dict[str, tuple[str, int | None]] = {}
        self._t0 = time.monotonic()

    def follow(self, names: list[str], timeout: float) -> dict[str, tuple[Obj, list[RunView]]]:
        """Polls until the PipelineRuns and all their TaskRuns and CustomRuns are done; returns each."""
        self._t0 = time.monotonic()
        self._shown = 0
        views: dict[str, dict[str, RunView]] = {n: {} for n in names}
        tops: dict[str, Obj | None] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in names:
                tops[name] = top = self.kube.get_pipeline_run(self.ns, name)
                for child in (top or {}).get("status", {}).get("childReferences") or []:
                    if child.get("kind") in ("CustomRun", "TaskRun"):
                        task = child["pipelineTaskName"]
                        label = f"{name.removeprefix('demo-')}/{task}" if len(names) > 1 else task
                        views[name].setdefault(
                            child["name"], RunView(task, child["name"], child["kind"], label)
                        )
            every = [v for vs in views.values() for v in vs.values()]
            for v in every:
                self._update(v)
            self._render(every)
            if all(done(t) for t in tops.values()) and all(done(v.run) for v in every):
                if self.tty:
                    self.out.write("\n")
                return {n: (tops[n] or {}, list(views[n].values())) for n in names}
            time.sleep(0.5)
        raise TimeoutError(f"PipelineRuns {', '.join(names)} not done after {timeout:.0f}s")

    def _update(self, v: RunView) -> None:
        if v.kind == "TaskRun":
            v.run = self.kube.get_task_run(self.ns, v.name)
            status = (v.run or {}).get("status") or {}
            v.pod = str(status.get("podName") or "")
            extra: Obj = {}
        else:
            v.run = self.kube.get_custom_run(self.ns, v.name)
            extra = ((v.run or {}).get("status") or {}).get("extraFields") or {}
            if extra.get("podName"):
                v.pod = str(extra["podName"])
        if v.pod:
            pod = self.kube.pod(self.ns, v.pod)
            if pod:
                v.uid = pod["metadata"]["uid"]
                v.node = (pod.get("spec") or {}).get("nodeName") or v.node
                v.pod_phase = (pod.get("status") or {}).get("phase") or ""
                res = (pod["spec"]["containers"][0].get("resources") or {}).get("requests") or {}
                v.requested = res.get("ephemeral-storage", v.requested)
                self.sampler.watch(v.uid, v.node)
        if v.uid:
            v.peak_use = self.sampler.peak(v.uid)
            running = v.kind == "CustomRun" and v.pod_phase == "Running"
            prog = last_progress(self.kube.pod_log(self.ns, v.pod, "push")) if running else None
            if prog:
                v.bytes_done, v.bytes_total = prog.get("bytes_done"), prog.get("bytes_total")
                v.rate = prog.get("rate_bps")
        res = results(v.run or {})
        if condition(v.run).get("status") == "True" and res.get("IMAGE_SIZE"):
            size = int(res["IMAGE_SIZE"])
            secs = float(extra.get("pushSeconds") or 0)
            v.bytes_done = v.bytes_total = size
            # Bytes that really moved: a copy whose blobs were mounted across repositories moved none.
            moved = extra.get("bytesUploaded")
            moved = size if moved is None else int(moved)
            v.rate = moved / secs if secs > 0 and moved else None

    def _render(self, views: list[RunView]) -> None:
        if self.tty:
            if self._shown:
                self.out.write(f"\033[{self._shown}F")
            for v in views:
                line = report.progress_line(v.label or v.task, v.phase, v.bytes_done, v.bytes_total, v.rate)
                self.out.write(f"\033[K  {line}\n")
            self._shown = len(views)
            self.out.flush()
            return
        for v in views:
            key = (v.phase, v.bytes_done)
            if self._last.get(v.name) == key:
                continue
            self._last[v.name] = key
            line = report.progress_line(v.label or v.task, v.phase, v.bytes_done, v.bytes_total, v.rate)
            self.out.write(f"  [{time.monotonic() - self._t0:6.1f}s] {line.rstrip()}\n")
            self.out.flush()
