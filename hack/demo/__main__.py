"""python -m hack.demo [--size 300M] [--keep] [--workdir DIR] | --down

Brings up the local cluster on real nodes (control plane, a registry, containerd + kubelet nodes: a normal
one and a small one whose kubelet root is a tmpfs), the locally built images, Tekton from its release
manifests and the controller. A PipelineRun then writes a synthetic model into a volumeClaimTemplate
workspace (a TaskRun), pushes it with the ModelImagePush custom task, and pulls
$(tasks.push.results.IMAGE_URL) with skopeo to check every file (a TaskRun); a second PipelineRun shows
buildah on the small node evicted by the kubelet for ephemeral storage. Exit code 0 only when every check
passed. Everything is stopped (and the host restored) on exit or Ctrl-C unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from hack.demo import report
from hack.demo.kube import Kube, Obj, condition, results
from hack.demo.model import layout, parse_size
from hack.demo.pipelines import MODEL_DIR, demo_pipeline_run
from hack.demo.stack import NODE, REPO, SMALL_LABEL, SMALL_NODE, SMALL_TAINT, Stack
from hack.demo.watch import RunView, Sampler, Watcher
from hack.localcluster.binaries import bin_dir
from hack.tekton.pipelines import params

NS = "modelpush-demo"
SOURCE = f"dir:///workspace/model/{MODEL_DIR}"
MIN_SMALL_NODE = 512 << 20


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
        # buildah's ephemeral-storage limit: a quarter of the model, far too little to stage it.
        self.limit_mi = max(8, self.size // (4 << 20))
        # The small node's tmpfs holds what buildah writes until the kubelet notices (the copy and the
        # layer, about twice the model), so the eviction is the kubelet's, never ENOSPC.
        self.small_mi = max(MIN_SMALL_NODE, 3 * self.size) >> 20
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
            "Starting the local cluster on real nodes (etcd, kube-apiserver, controller-manager, scheduler, "
            "a registry, containerd + kubelet per node, kube-proxy, local-path provisioner)"
        )
        s.start_cluster(f"{self.small_mi}Mi")
        self.took(
            t,
            f"nodes {NODE} (disk), {SMALL_NODE} (kubelet root on a {self.small_mi}Mi tmpfs, tainted "
            f"{SMALL_TAINT['key']}); registry {s.registry} (plain HTTP)",
        )
        t = self.step(
            "Building (cached by content) and pushing the images: base, pause, step, model-image-push, Tekton"
        )
        images = s.build_images()
        self.took(t, f"model-image-push {images.project.tag}, {len(images.tekton)} Tekton images")
        t = self.step("Installing Tekton Pipelines v1.9.1 from its release manifests (with its webhook)")
        s.start_tekton()
        self.took(t, "Tekton is up")
        t = self.step("Starting the model-image-push controller (python -m controller)")
        s.start_controller()
        self.took(t, f"ready; work pods run {images.project.ref}")

        kube = Kube(s.rest())
        kube.namespace(NS)
        self.step(
            f"Running two PipelineRuns side by side, each TaskRun write-model ({report.human(self.size)} "
            "into a volumeClaimTemplate workspace) then task push:"
        )
        self.say(
            f"    demo-native:  push with mode build on {NODE}, then TaskRun pull "
            "$(tasks.push.results.IMAGE_URL) with skopeo and check every file"
        )
        self.say(
            f"    demo-buildah: push with mode buildah, storage ephemeral, on {SMALL_NODE} "
            f"({self.limit_mi}Mi ephemeral-storage limit)"
        )
        t = time.monotonic()
        kube.pipeline_run(NS, self.native_pipeline())
        kube.pipeline_run(NS, self.buildah_pipeline())
        with Sampler(s.rest()) as sampler:
            watcher = Watcher(kube, NS, self.out, self.tty, sampler)
            got = watcher.follow(["demo-native", "demo-buildah"], self.args.timeout)
        elapsed = time.monotonic() - t
        native = self.native_result(*got["demo-native"], elapsed)
        buildah = self.buildah_result(got["demo-buildah"][1])
        self.compare(native, buildah)

    def native_pipeline(self) -> Obj:
        assert self.stack.images is not None
        reg = self.stack.registry
        p = params(source=SOURCE, image=f"{reg}/demo/model:v1", insecure_registries=reg)
        return demo_pipeline_run("demo-native", self.stack.images.step.ref, self.size, p, True)

    def buildah_pipeline(self) -> Obj:
        assert self.stack.images is not None
        reg = self.stack.registry
        small = {
            "nodeSelector": {SMALL_LABEL[0]: SMALL_LABEL[1]},
            "tolerations": [dict(SMALL_TAINT, operator="Equal")],
        }
        p = params(
            source=SOURCE,
            image=f"{reg}/demo/model:buildah",
            mode="buildah",
            storage="ephemeral",
            ephemeral_storage=f"{self.limit_mi}Mi",
            node_selector=json.dumps(small["nodeSelector"]),
            tolerations=json.dumps(small["tolerations"]),
            insecure_registries=reg,
        )
        # The podTemplate puts the write-model TaskRun (and so the workspace and the affinity assistant)
        # on the small node too.
        return demo_pipeline_run("demo-buildah", self.stack.images.step.ref, self.size, p, False, small)

    def native_result(self, top: Obj, views: list[RunView], elapsed: float) -> RunView | None:
        image = f"{self.stack.registry}/demo/model:v1"
        by_task = {v.task: v for v in views}
        push, pull = by_task.get("push"), by_task.get("pull")
        ok = condition(top).get("status") == "True"
        self.checks.add(ok, f"PipelineRun demo-native succeeded ({condition(top).get('reason')})")
        if not ok or push is None or push.run is None:
            self.say(f"    {condition(top).get('message', '')}")
            return push
        res = results(push.run)
        extra = push.run["status"].get("extraFields") or {}
        digest, url = res.get("IMAGE_DIGEST", ""), res.get("IMAGE_URL", "")
        size = int(res.get("IMAGE_SIZE") or 0)
        secs = float(extra.get("pushSeconds") or 0)
        self.say("")
        self.say("demo-native")
        self.say(f"  image    {image}")
        self.say(f"  digest   {digest}")
        self.say(f"  url      {url}")
        self.say(f"  size     {report.human(size)} ({res.get('LAYERS', '?')} layers)")
        self.say(
            f"  time     push {secs:.1f}s ({report.rate(size / secs if secs else None)}), "
            f"both PipelineRuns {elapsed:.1f}s"
        )
        self.checks.add(
            digest.startswith("sha256:") and url.endswith(digest), "IMAGE_DIGEST/IMAGE_URL results set"
        )
        files = len(layout(self.size))
        verified = results(pull.run or {}).get("verified-files", "0") if pull else "0"
        match = "all match" if verified == str(files) else "MISMATCH"
        self.say(f"  pulled   TaskRun pull: skopeo copy {url}, {verified}/{files} files, sha256 {match}")
        self.checks.add(
            verified == str(files),
            f"all {files} model files pulled back by the pull TaskRun match their sha256",
        )
        return push

    def buildah_result(self, views: list[RunView]) -> RunView | None:
        self.say("")
        self.say(f"demo-buildah on {SMALL_NODE}")
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
        evicted = "demo-buildah-push"
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
                left = demo.stack.stop()
                if left:
                    demo.say("Could not remove from the host:\n  " + "\n  ".join(left))
                if demo.checks.passed and not left:
                    shutil.rmtree(workdir, ignore_errors=True)
                    demo.say(
                        f"Stopped every process the demo started and removed {workdir} "
                        f"({time.monotonic() - t:.1f}s)"
                    )
                else:
                    # Keep the logs for a look; drop the bulky model and registry copies.
                    for bulky in (workdir / "cluster" / "registry", workdir / "cluster" / "volumes"):
                        shutil.rmtree(bulky, ignore_errors=True)
                    demo.say(f"Stopped every process the demo started; logs kept in {demo.stack.logdir}")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
    return 0 if demo.checks.passed and not interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
