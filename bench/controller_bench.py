"""Controller throughput benchmark: N CustomRuns at once against a real kube-apiserver.

The bench plays the kubelet itself (there is no node: it marks each work pod Running the moment it appears,
then, after --running-seconds, Succeeded with a contract-A termination message), so what is measured is the
controller and the API server, not pushes. Live progress is on (--progress-interval): while a pod runs the
controller reads its log tail (pods/log; with no node the API server answers at once that the pod has no host,
which still counts as a request). Prints one table.

    .venv/bin/python bench/controller_bench.py [--runs 500] [--kubeconfig K]

Without --kubeconfig it starts a throwaway control plane (hack.localcluster, no nodes) and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.kube.client import MERGE_PATCH, ApiError, KubeClient  # noqa: E402
from hack.ports import free_port  # noqa: E402

RESULT = json.dumps(
    {
        "image": "127.0.0.1:5000/bench/m:v1",
        "digest": "sha256:" + "b" * 64,
        "url": "127.0.0.1:5000/bench/m@sha256:" + "b" * 64,
        "size": 1,
        "layers": 1,
        "bytes_uploaded": 1,
        "bytes_skipped": 0,
        "seconds": 0.0,
    }
)


def rss_peak_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def epoch(stamp: str) -> float:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process so far (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def set_pod_phase(api: KubeClient, ns: str, pod: dict[str, Any], phase: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state: dict[str, Any] = {"running": {"startedAt": now}}
    if phase == "Succeeded":
        state = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "message": RESULT,
                "startedAt": now,
                "finishedAt": now,
            }
        }
    status = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "push",
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "",
                "ready": phase == "Running",
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    name = pod["metadata"]["name"]
    await api.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/{name}/status",
        body={"status": status},
        content_type=MERGE_PATCH,
    )


async def bench(
    kubeconfig: str, runs: int, concurrency: int, running: float, progress: float
) -> dict[str, Any]:
    api = await KubeClient.create(kubeconfig)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "PYTHONPATH": str(REPO),
        "MODELPUSH_NAMESPACES": ns,
        "MODELPUSH_METRICS_HOST": "127.0.0.1",
        "MODELPUSH_METRICS_PORT": str(port),
        "MODELPUSH_LEADER_ELECTION": "false",
        "MODELPUSH_MAX_CONCURRENT_RECONCILES": str(concurrency),
        "MODELPUSH_LOG_LEVEL": "WARNING",
        # live progress on: each Running pod's log tail is read at most this often
        "MODELPUSH_PROGRESS_INTERVAL_SECONDS": str(progress),
    }
    log = tempfile.NamedTemporaryFile(prefix="controller-bench-", suffix=".log", delete=False)
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, before any timing)
        [sys.executable, "-m", "controller"], cwd=REPO, env=env, stdout=log, stderr=log
    )
    pod_seen: dict[str, float] = {}  # when the bench's watch saw the pod (its own lag included)
    pod_created: dict[str, str] = {}  # the API server's creationTimestamp (whole seconds)
    completed_at: dict[str, float] = {}
    done_at: dict[str, float] = {}
    stop = asyncio.Event()

    async def ready() -> None:
        import aiohttp

        for _ in range(240):
            try:
                async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
        raise RuntimeError("controller never became ready")

    async def run_pod(obj: dict[str, Any]) -> None:
        # Running for `running` seconds (the controller reads progress meanwhile), then Succeeded
        if running > 0:
            await set_pod_phase(api, ns, obj, "Running")
            await asyncio.sleep(running)
        await set_pod_phase(api, ns, obj, "Succeeded")
        completed_at[obj["metadata"]["labels"]["modelpush.dev/customrun"]] = time.monotonic()

    pod_tasks: set[asyncio.Task[None]] = set()

    async def kubelet() -> None:
        # watch the work pods and run each (the bench's stand-in for a node)
        rv = ""
        while not stop.is_set():
            q: dict[str, Any] = {
                "labelSelector": "app.kubernetes.io/managed-by=model-image-push",
                "timeoutSeconds": 30,
            }
            if rv:
                q["resourceVersion"] = rv
            try:
                async for ev in api.watch(f"/api/v1/namespaces/{ns}/pods", q):
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    name = obj["metadata"]["name"]
                    if ev["type"] == "ADDED" and name not in pod_seen:
                        pod_seen[name] = time.monotonic()
                        pod_created[name] = obj["metadata"]["creationTimestamp"]
                        task = asyncio.create_task(run_pod(obj))
                        pod_tasks.add(task)
                        task.add_done_callback(pod_tasks.discard)
            except ApiError:
                rv = ""

    async def watch_runs() -> None:
        rv = ""
        while len(done_at) < runs and not stop.is_set():
            q: dict[str, Any] = {"timeoutSeconds": 30}
            if rv:
                q["resourceVersion"] = rv
            try:
                async for ev in api.watch(f"/apis/tekton.dev/v1beta1/namespaces/{ns}/customruns", q):
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    conds = (obj.get("status") or {}).get("conditions") or []
                    if conds and conds[0].get("status") == "True":
                        done_at.setdefault(obj["metadata"]["name"], time.monotonic())
                    if len(done_at) >= runs:
                        return
            except ApiError:
                rv = ""

    try:
        await ready()
        tasks = [asyncio.create_task(kubelet()), asyncio.create_task(watch_runs())]
        sem = asyncio.Semaphore(50)
        before = await metrics_text(port)
        get0, patch0 = api_requests(before, 'verb="GET"'), api_requests(before, 'verb="PATCH"')

        async def create(i: int) -> None:
            body = {
                "apiVersion": "tekton.dev/v1beta1",
                "kind": "CustomRun",
                "metadata": {"name": f"run-{i:04d}"},
                "spec": {
                    "customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"},
                    "params": [
                        {"name": "source", "value": "docker://127.0.0.1:5000/bench/src:v1"},
                        {"name": "image", "value": f"127.0.0.1:5000/bench/m{i}:v1"},
                        # no node matches: a real node in the cluster (--kubeconfig) leaves them be
                        {"name": "node-selector", "value": '{"modelpush.dev/bench": "no-node"}'},
                    ],
                },
            }
            async with sem:
                await api.request("POST", f"/apis/tekton.dev/v1beta1/namespaces/{ns}/customruns", body=body)

        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        wall0 = time.time()
        await asyncio.gather(*(create(i) for i in range(runs)))
        created = time.monotonic() - t0
        deadline = time.monotonic() + 600 + running
        while len(done_at) < runs and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(0.2)
        stop.set()
        for t in tasks:
            t.cancel()
        after = await metrics_text(port)
        cpu = cpu_seconds(proc.pid) - cpu0
        latencies = [done_at[r] - completed_at[r] for r in done_at if r in completed_at]
        requests = api_requests(after) - api_requests(before)
        return {
            "runs": runs,
            "pod Running before Succeeded (s)": running,
            "progress interval (s)": progress,
            "create all CustomRuns (s)": round(created, 2),
            "all pods exist (s)": round(max(pod_seen.values()) - t0, 2) if len(pod_seen) == runs else None,
            # by the API server's clock: tells the controller's pace from the bench watch's own lag
            "all pods created, server clock (s)": round(max(map(epoch, pod_created.values())) - wall0, 1)
            if len(pod_created) == runs
            else None,
            "half the pods exist (s)": round(pct([v - t0 for v in pod_seen.values()], 0.5), 2),
            # where the pod creations fall in time: stalls show as gaps, a slow API server as a flat rate
            "pods created per 5 s": " ".join(
                str(sum(1 for v in pod_seen.values() if i * 5 <= v - t0 < (i + 1) * 5))
                for i in range(int((max(pod_seen.values(), default=t0) - t0) // 5) + 1)
            ),
            "all runs True (s)": round(max(done_at.values()) - t0, 2) if len(done_at) == runs else None,
            "status latency p50 (s)": round(statistics.median(latencies), 3) if latencies else None,
            "status latency p99 (s)": round(pct(latencies, 0.99), 3) if latencies else None,
            "API requests per run": round(requests / runs, 2),
            # where the requests go: GETs are almost all pods/log reads for progress, PATCHes status writes
            "  GET per run (pods/log)": round((api_requests(after, 'verb="GET"') - get0) / runs, 2),
            "  PATCH per run (status)": round((api_requests(after, 'verb="PATCH"') - patch0) / runs, 2),
            "reconciles per run": round(
                (counter(after, "modelpush_reconcile_total") - counter(before, "modelpush_reconcile_total"))
                / runs,
                2,
            ),
            "controller CPU per run (ms)": round(1000 * cpu / runs, 1),
            "controller peak RSS (MiB)": round(rss_peak_kib(proc.pid) / 1024, 1),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        try:
            await api.request("DELETE", f"/api/v1/namespaces/{ns}")
        except ApiError:
            pass
        await api.close()


async def metrics_text(port: int) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        return await r.text()


def counter(text: str, name: str, labels: str = "") -> float:
    """Sum of a counter's samples whose label set contains `labels` (e.g. 'verb="GET"')."""
    pattern = rf"^{name}(\{{[^}}]*\}})? (\S+)$"
    return sum(float(m.group(2)) for m in re.finditer(pattern, text, re.M) if labels in (m.group(1) or ""))


def api_requests(text: str, labels: str = "") -> float:
    return counter(text, "modelpush_api_requests_total", labels)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8, help="controller's max concurrent reconciles")
    p.add_argument("--kubeconfig", help="an existing cluster; default: start a throwaway control plane")
    p.add_argument(
        "--running-seconds", type=float, default=12.0, help="how long each pod stays Running (progress reads)"
    )
    p.add_argument(
        "--progress-interval", type=float, default=10.0, help="the controller's PROGRESS_INTERVAL_SECONDS"
    )
    args = p.parse_args()
    cluster = None
    kubeconfig = args.kubeconfig
    if not kubeconfig:
        from hack.localcluster import LocalCluster

        workdir = Path(tempfile.mkdtemp(prefix="controller-bench-"))
        cluster = LocalCluster(workdir)
        cluster.start()
        kubeconfig = str(cluster.kubeconfig)
    try:
        result = asyncio.run(
            bench(kubeconfig, args.runs, args.concurrency, args.running_seconds, args.progress_interval)
        )
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    targets = {
        "all pods exist (s)": "< 30",
        "all runs True (s)": f"< 30 + {args.running_seconds:g}",
        "status latency p99 (s)": "< 2",
        "controller peak RSS (MiB)": "< 200",
    }
    width = max(len(k) for k in result)
    print(f"{'metric':<{width}}  {'value':>10}  target")
    for key, value in result.items():
        print(f"{key:<{width}}  {value!s:>10}  {targets.get(key, '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
