"""Follows a PipelineRun (or a lone CustomRun) and its work pods: a live line per run on a TTY, plain log
lines otherwise; samples each pod's ephemeral disk use the way the node agent measures it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hack.demo import report
from hack.demo.kube import Kube, Obj, condition, done, results
from hack.nodeagent.du import disk_usage


@dataclass
class RunView:
    task: str  # pipeline task name (or the demo's label for a lone CustomRun)
    name: str  # CustomRun name
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
    """A thread measuring pods' directories under the node agent's state dir every `every` seconds."""

    def __init__(self, state_dir: Path, every: float = 0.2) -> None:
        self.state_dir = state_dir
        self.every = every
        self.peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="du-sampler", daemon=True)

    def watch(self, uid: str) -> None:
        with self._lock:
            self.peaks.setdefault(uid, 0)

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
                uids = list(self.peaks)
            for uid in uids:
                d = self.state_dir / "pods" / uid
                if not d.exists():
                    continue
                used = disk_usage([d])
                with self._lock:
                    self.peaks[uid] = max(self.peaks[uid], used)


def last_progress(log: Path) -> Obj | None:
    """The newest `{"event": "progress", ...}` line the work pod wrote (contract A)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
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
    def __init__(self, kube: Kube, ns: str, state_dir: Path, out: TextIO, tty: bool, sampler: Sampler):
        self.kube = kube
        self.ns = ns
        self.state_dir = state_dir
        self.out = out
        self.tty = tty
        self.sampler = sampler
        self._shown = 0  # lines drawn by the last TTY frame
        self._last: dict[str, tuple[str, int | None]] = {}
        self._t0 = time.monotonic()

    def follow(self, kind: str, name: str, label: str, timeout: float) -> tuple[Obj, list[RunView]]:
        """Polls until the PipelineRun/CustomRun and all its CustomRuns are done; returns them."""
        self._t0 = time.monotonic()
        self._shown = 0
        views: dict[str, RunView] = {}
        deadline = time.monotonic() + timeout
        top: Obj | None = None
        while time.monotonic() < deadline:
            if kind == "PipelineRun":
                top = self.kube.get_pipeline_run(self.ns, name)
                for child in (top or {}).get("status", {}).get("childReferences") or []:
                    if child.get("kind") == "CustomRun":
                        views.setdefault(child["name"], RunView(child["pipelineTaskName"], child["name"]))
            else:
                top = self.kube.get_custom_run(self.ns, name)
                views.setdefault(name, RunView(label, name))
            for v in views.values():
                self._update(v)
            self._render(list(views.values()))
            if done(top) and all(done(v.run) for v in views.values()):
                if self.tty:
                    self.out.write("\n")
                return top or {}, list(views.values())
            time.sleep(0.5)
        raise TimeoutError(f"{kind} {name} not done after {timeout:.0f}s")

    def _update(self, v: RunView) -> None:
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
                self.sampler.watch(v.uid)
        if v.uid:
            v.peak_use = self.sampler.peak(v.uid)
            prog = last_progress(self.state_dir / "pods" / v.uid / "containers" / "push" / "log")
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
                line = report.progress_line(v.task, v.phase, v.bytes_done, v.bytes_total, v.rate)
                self.out.write(f"\033[K  {line}\n")
            self._shown = len(views)
            self.out.flush()
            return
        for v in views:
            key = (v.phase, v.bytes_done)
            if self._last.get(v.name) == key:
                continue
            self._last[v.name] = key
            line = report.progress_line(v.task, v.phase, v.bytes_done, v.bytes_total, v.rate)
            self.out.write(f"  [{time.monotonic() - self._t0:6.1f}s] {line.rstrip()}\n")
            self.out.flush()
