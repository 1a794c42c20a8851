"""python -m hack.demo [--size 300M] [--keep] [--workdir DIR] | --down

Brings up the local cluster (control plane, node agent with a normal and a small node), a registry, Tekton
and the controller; pushes a synthetic model with a PipelineRun of the ModelImagePush custom task; verifies
the image with skopeo; then shows buildah on the small node evicted for ephemeral storage. Exit code 0 only
when every check passed. Everything is stopped on exit or Ctrl-C unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from hack.demo import report
from hack.demo.kube import Kube, Obj, condition, results
from hack.demo.model import parse_size, write_model
from hack.demo.stack import REPO, SMALL_LABEL, SMALL_NODE, SMALL_TAINT_KEY, Stack
from hack.demo.verify import compare, read_layout, skopeo_pull
from hack.demo.watch import RunView, Sampler, Watcher
from hack.localcluster.binaries import bin_dir
from hack.tekton.pipelines import CUSTOM_TASK, params, pipeline_run, push_and_copy, push_task

NS = "modelpush-demo"
CLAIM = "model"
MODEL_DIR = "demo-model"
SOURCE = f"dir:///workspace/model/{MODEL_DIR}"
WORKSPACES = [{"name": "model", "workspace": "shared"}]


@dataclass
class Checks:
    items: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, ok: bool, what: str) -> bool:
        self.items.append((ok, what))
        return ok

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(ok for ok, _ in self.items)


class Demo:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.tty = out.isatty()
        self.size = parse_size(args.size)
        # The small node holds a quarter of the model: far too little for buildah to stage it.
        self.small_mi = max(8, self.size // (4 << 20))
        self.stack = Stack(Path(args.workdir).resolve(), keep=args.keep)
        self.checks = Checks()
        self.t0 = time.monotonic()

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, text: str) -> float:
        self.say(f"==> {text}")
        return time.monotonic()

    def took(self, since: float, text: str = "done") -> None:
        self.say(f"    {text} ({time.monotonic() - since:.1f}s)")

    # -- the whole story -----------------------------------------------------------------------------
    def run(self) -> None:
        s = self.stack
        t = self.step(
            "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler)"
        )
        s.start_cluster(f"{self.small_mi}Mi")
        self.took(
            t,
            f"apiserver {s.cluster.server if s.cluster else '?'}; nodes local-node-1 (10Gi), "
            f"{SMALL_NODE} ({self.small_mi}Mi ephemeral, tainted {SMALL_TAINT_KEY}=true:NoSchedule)",
        )
        t = self.step("Starting a local registry (Debian's docker-registry)")
        s.start_registry()
        self.took(t, f"registry {s.registry} (plain HTTP)")
        t = self.step("Starting Tekton pipelines controller v1.9.1")
        if self.args.no_tekton:
            self.took(t, "skipped (--no-tekton): plain CustomRuns instead of PipelineRuns")
        elif s.start_tekton():
            self.took(t, "Tekton is up")
        else:
            self.took(t, f"Tekton did not start ({s.tekton_error}); falling back to plain CustomRuns")
        t = self.step("Starting the model-image-push controller (python -m controller)")
        s.start_controller()
        self.took(t, f"ready; metrics on 127.0.0.1:{s.controller_port}")

        kube = Kube(s.rest())
        kube.namespace(NS)
        t = self.step(f"Writing a {report.human(self.size)} synthetic model onto PVC {NS}/{CLAIM}")
        pvc_dir = kube.pvc(NS, CLAIM, f"{max(1024, 2 * self.size >> 20)}Mi", s.state_dir)
        hashes = write_model(pvc_dir / MODEL_DIR, self.size)
        self.took(t, f"{len(hashes)} files in {pvc_dir / MODEL_DIR}")

        with Sampler(s.state_dir) as sampler:
            watcher = Watcher(kube, NS, s.state_dir, self.out, self.tty, sampler)
            native = self.native_run(kube, watcher, hashes)
            buildah = self.buildah_run(kube, watcher)
        self.compare(native, buildah)

    def native_run(self, kube: Kube, watcher: Watcher, hashes: dict[str, str]) -> RunView | None:
        reg = self.stack.registry
        image, copy_image = f"{reg}/demo/model:v1", f"{reg}/demo/model-copy:v1"
        t = time.monotonic()
        if self.stack.tekton:
            self.step(
                "Running PipelineRun demo-native: task push (mode build), then task copy "
                "$(tasks.push.results.IMAGE_URL)"
            )
            kube.pipeline_run(
                NS, push_and_copy("demo-native", CLAIM, MODEL_DIR, image, copy_image, insecure=reg)
            )
            top, views = watcher.follow("PipelineRun", "demo-native", "", self.args.timeout)
        else:
            self.step("Running CustomRun demo-native (mode build)")
            kube.custom_run(NS, custom_run("demo-native", params(source=SOURCE, image=image)))
            top, views = watcher.follow("CustomRun", "demo-native", "push", self.args.timeout)
        elapsed = time.monotonic() - t
        by_task = {v.task: v for v in views}
        push = by_task.get("push")
        ok = condition(top).get("status") == "True"
        kind = "PipelineRun" if self.stack.tekton else "CustomRun"
        self.checks.add(ok, f"{kind} demo-native succeeded ({condition(top).get('reason')})")
        if not ok or push is None or push.run is None:
            self.say(f"    {condition(top).get('message', '')}")
            return push
        res = results(push.run)
        extra = push.run["status"].get("extraFields") or {}
        digest, url = res.get("IMAGE_DIGEST", ""), res.get("IMAGE_URL", "")
        size = int(res.get("IMAGE_SIZE") or 0)
        secs = float(extra.get("pushSeconds") or 0)
        self.say("")
        self.say("Result")
        self.say(f"  image    {image}")
        self.say(f"  digest   {digest}")
        self.say(f"  url      {url}")
        self.say(f"  size     {report.human(size)} ({res.get('LAYERS', '?')} layers)")
        self.say(
            f"  time     push {secs:.1f}s ({report.rate(size / secs if secs else None)}), "
            f"whole {kind.lower()} {elapsed:.1f}s"
        )
        self.checks.add(
            digest.startswith("sha256:") and url.endswith(digest), "IMAGE_DIGEST/IMAGE_URL results set"
        )
        copy = by_task.get("copy")
        if copy is not None and copy.run is not None:
            cres = results(copy.run)
            same = cres.get("IMAGE_DIGEST") == digest
            cextra = copy.run["status"].get("extraFields") or {}
            moved = report.human(cextra.get("bytesUploaded"))
            self.say(f"  copy     {copy_image} (digest preserved: {same}; {moved} uploaded, rest mounted)")
            self.checks.add(same, "copy task consumed $(tasks.push.results.IMAGE_URL) and kept the digest")
        self.verify(image, digest, hashes)
        return push

    def verify(self, image: str, digest: str, hashes: dict[str, str]) -> None:
        t = self.step(f"Verifying: skopeo copy docker://{image} to an OCI layout, then hash every file")
        with tempfile.TemporaryDirectory(prefix="demo-pull-") as tmp:
            skopeo_pull(image, Path(tmp) / "oci")
            pulled = read_layout(Path(tmp) / "oci")
        problems = compare(hashes, pulled.files)
        for p in problems:
            self.say(f"    {p}")
        self.took(
            t,
            f"manifest {pulled.manifest_digest[:19]}..., {len(pulled.files)}/{len(hashes)} files, "
            f"sha256 {'all match' if not problems else 'MISMATCH'}",
        )
        self.checks.add(pulled.manifest_digest == digest, "skopeo pulled the same manifest digest")
        self.checks.add(not problems, f"all {len(hashes)} model files in the image match their sha256")

    def buildah_run(self, kube: Kube, watcher: Watcher) -> RunView | None:
        reg = self.stack.registry
        p = params(
            source=SOURCE,
            image=f"{reg}/demo/model:buildah",
            mode="buildah",
            storage="ephemeral",
            ephemeral_storage=f"{self.small_mi}Mi",
            node_selector=json.dumps({SMALL_LABEL[0]: SMALL_LABEL[1]}),
            tolerations=json.dumps(
                [{"key": SMALL_TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
            ),
            insecure_registries=reg,
        )
        self.say("")
        what = (
            f"the same push with mode buildah, storage ephemeral, on {SMALL_NODE} "
            f"({self.small_mi}Mi allocatable)"
        )
        if self.stack.tekton:
            self.step(f"Running PipelineRun demo-buildah: {what}")
            pr = pipeline_run(
                "demo-buildah", [push_task("push", params=p, workspaces=WORKSPACES)], workspace_claim=CLAIM
            )
            kube.pipeline_run(NS, pr)
            _, views = watcher.follow("PipelineRun", "demo-buildah", "", self.args.timeout)
        else:
            self.step(f"Running CustomRun demo-buildah: {what}")
            kube.custom_run(NS, custom_run("demo-buildah", p))
            _, views = watcher.follow("CustomRun", "demo-buildah", "push", self.args.timeout)
        v = next((x for x in views if x.task == "push"), None)
        if v is None or v.run is None:
            self.checks.add(False, "buildah run created a CustomRun")
            return None
        cond = condition(v.run)
        extra = v.run["status"].get("extraFields") or {}
        ev = extra.get("eviction") or {}
        self.say(f"  reason   {cond.get('reason')}")
        if ev:
            self.say(f"  kubelet  {str(ev.get('message', '')).strip()}")
            figures = ", ".join(
                f"{k} {ev[k]}" for k in ("requested", "limit", "usage", "threshold", "available") if ev.get(k)
            )
            self.say(
                f"  figures  node {ev.get('node') or v.node}: {figures}; "
                f"peak use sampled {report.human(v.peak_use)}"
            )
            self.say(
                f"  advice   raise ephemeral-storage (suggested {ev.get('suggested', '?')}), keep buildah "
                "storage on the PVC (storage=workspace), or use a native mode"
            )
        else:
            self.say(f"  message  {cond.get('message', '')}")
        self.checks.add(
            cond.get("status") == "False"
            and cond.get("reason") == "EphemeralStorageExhausted"
            and v.node == SMALL_NODE,
            f"buildah on {SMALL_NODE} was evicted: EphemeralStorageExhausted",
        )
        return v

    def compare(self, native: RunView | None, buildah: RunView | None) -> None:
        self.say("")
        self.say("Ephemeral storage on the node, side by side (model " + report.human(self.size) + ")")
        rows = []
        for label, v in (("native build", native), ("buildah", buildah)):
            if v is None:
                continue
            rows.append([label, v.node or "?", v.requested or "?", report.human(v.peak_use), v.reason])
        self.say(report.table(["run", "node", "requested", "peak use (outside PVC)", "outcome"], rows))
        if native is not None and native.uid:
            small = native.peak_use < self.size // 10
            self.checks.add(
                small,
                f"native build used {report.human(native.peak_use)} of node ephemeral storage "
                f"(< 10% of the model)",
            )

    # -- end -----------------------------------------------------------------------------------------
    def summary(self) -> None:
        self.say("")
        self.say("Checks")
        for ok, what in self.checks.items:
            self.say(f"  {'ok  ' if ok else 'FAIL'}  {what}")
        verdict = "all checks passed" if self.checks.passed else "SOME CHECKS FAILED"
        self.say(f"Demo finished in {time.monotonic() - self.t0:.1f}s: {verdict}")

    def keep_notice(self) -> None:
        kc = self.stack.kubeconfig
        kubectl = shutil.which("kubectl") or "kubectl"
        built = kubectl_from_build()
        if built is not None:
            kubectl = str(built)  # the one built with the control plane matches its version
        self.say("")
        self.say("Left running (--keep). Use it with kubectl:")
        self.say(f"  export KUBECONFIG={kc}")
        self.say(f"  {kubectl} -n {NS} get pipelineruns,customruns,pods")
        evicted = "demo-buildah-push" if self.stack.tekton else "demo-buildah"
        self.say(f"  {kubectl} -n {NS} get customrun {evicted} -o yaml   # status.extraFields.eviction")
        self.say(f"  registry: {self.stack.registry} (plain HTTP)   logs: {self.stack.logdir}")
        self.say("Stop it: .venv/bin/python -m hack.demo --down" + self._workdir_flag())

    def _workdir_flag(self) -> str:
        default = (REPO / ".local" / "demo").resolve()
        return "" if self.stack.workdir == default else f" --workdir {self.stack.workdir}"


def kubectl_from_build() -> Path | None:
    """hack/build-control-plane.sh also builds kubectl; None when it is not there."""
    try:
        path = bin_dir() / "kubectl"
    except (OSError, subprocess.CalledProcessError):
        return None
    return path if path.is_file() else None


def custom_run(name: str, p: list[Obj]) -> Obj:
    return {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": name},
        "spec": {
            "customRef": dict(CUSTOM_TASK),
            "params": p,
            "workspaces": [{"name": "model", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM tears down like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hack.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="300M", help="synthetic model size (default 300M; e.g. 24M, 1G)")
    ap.add_argument("--keep", action="store_true", help="leave everything running and print how to use it")
    ap.add_argument(
        "--workdir", default=str(REPO / ".local" / "demo"), help="state directory (default .local/demo)"
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each run (default 900)")
    ap.add_argument("--no-tekton", action="store_true", help="skip Tekton; create plain CustomRuns")
    ap.add_argument("--down", action="store_true", help="stop a demo left running with --keep")
    args = ap.parse_args(argv)
    try:
        parse_size(args.size)
    except ValueError as e:
        ap.error(str(e))
    workdir = Path(args.workdir).resolve()
    # A demo left running with --keep (or killed hard) is replaced, never duplicated.
    Stack(workdir).stop()
    if args.down:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"demo stopped; removed {workdir}")
        return 0
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    signal.signal(signal.SIGTERM, _terminate)
    demo = Demo(args, sys.stdout)
    interrupted = False
    try:
        demo.run()
    except KeyboardInterrupt:
        interrupted = True
        demo.say("\ninterrupted")
    except Exception as e:
        demo.checks.add(False, f"demo aborted: {type(e).__name__}: {e}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
        try:
            if not interrupted:
                demo.summary()
            if args.keep and not interrupted:
                demo.keep_notice()
            else:
                t = time.monotonic()
                demo.stack.stop()
                if demo.checks.passed:
                    shutil.rmtree(workdir, ignore_errors=True)
                    demo.say(
                        f"Stopped every process the demo started and removed {workdir} "
                        f"({time.monotonic() - t:.1f}s)"
                    )
                else:
                    # Keep the logs for a look; drop the bulky model and registry copies.
                    for bulky in (workdir / "node", workdir / "registry-data"):
                        shutil.rmtree(bulky, ignore_errors=True)
                    demo.say(f"Stopped every process the demo started; logs kept in {demo.stack.logdir}")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
    return 0 if demo.checks.passed and not interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
