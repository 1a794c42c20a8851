"""Side-by-side benchmark: native streaming build/copy vs buildah bud+push vs skopeo copy (one run).

    .venv/bin/python bench/push_bench.py [--size 4G] [--files 4] [--workdir DIR] [--skip-buildah]

Makes a synthetic model (random bytes, so nothing compresses), starts fresh Debian docker-registry
instances on loopback for each destination, and runs each tool as a child process. Per run it prints:
wall seconds, MiB/s (model bytes / wall), peak RSS of the tool's process tree, "written": bytes the
tool's process tree wrote to disk anywhere (getrusage ru_oublock, i.e. the kernel's write_bytes; exact,
registries are other processes and are not counted), the peak size of the "PVC" directory it was given,
and "tmp growth": the peak growth of /tmp, /var/tmp and the containers storage dirs (sampled every 0.25 s;
this one sees the whole machine, so other processes' files add noise).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.model.quantity import parse_size  # noqa: E402
from hack.registry import LocalRegistry  # noqa: E402

MiB = 1 << 20


def du(path: Path, exclude: tuple[Path, ...] = ()) -> int:
    """Allocated bytes under path (st_blocks), not following symlinks; tolerant of files vanishing."""
    total = 0
    stack = [str(path)]
    excl = {str(e) for e in exclude}
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            if e.path not in excl:
                                stack.append(e.path)
                        else:
                            total += e.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


@dataclass
class Row:
    name: str
    wall: float
    model_bytes: int
    rss: int
    written: int
    pvc_peak: int
    outside_peak: int
    ok: bool
    note: str = ""


class Sampler(threading.Thread):
    """Samples the PVC dir and the 'outside' dirs while a tool runs; keeps peaks."""

    def __init__(self, pvc: Path | None, outside: list[Path], exclude: tuple[Path, ...]) -> None:
        super().__init__(daemon=True)
        self.pvc, self.outside, self.exclude = pvc, outside, exclude
        self.base = sum(du(p, exclude) for p in outside)
        self.pvc_peak = 0
        self.outside_peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.25)
        self.sample()

    def sample(self) -> None:
        if self.pvc is not None:
            self.pvc_peak = max(self.pvc_peak, du(self.pvc))
        grown = sum(du(p, self.exclude) for p in self.outside) - self.base
        self.outside_peak = max(self.outside_peak, grown)


def measure(name: str, cmd: list[str], model_bytes: int, pvc: Path | None, work: Path) -> Row:
    # Where container tools stage by default; $HOME as a whole is too big to walk 4 times a second.
    home = Path.home()
    outside = [Path("/tmp"), Path("/var/tmp"), home / ".local/share/containers", Path("/var/lib/containers")]
    exclude = (work, REPO)  # the bench's own dirs (sources, registries) and the checkout
    sampler = Sampler(pvc, outside, exclude)
    sampler.start()
    out_path = work / f"{name.replace(' ', '_')}.out"
    err_path = work / f"{name.replace(' ', '_')}.err"
    rss_path = work / f"{name.replace(' ', '_')}.rss"
    # ru_maxrss survives exec, so a child forked from this (big) process would report our RSS; GNU time is
    # a small process in between and reports the real peak of the tool's tree.
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_path)] if Path("/usr/bin/time").exists() else []
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([*timer, *cmd], stdout=out, stderr=err, cwd=REPO)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    rss = ru.ru_maxrss * 1024
    if timer:
        try:
            rss = int(rss_path.read_text().split()[-1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    sampler.stop.set()
    sampler.join()
    text = out_path.read_text().strip().splitlines()
    note = ""
    ok = proc.returncode == 0
    if not ok:
        note = (text[-1] if text else err_path.read_text()[-300:])[:200]
    return Row(name, wall, model_bytes, rss, ru.ru_oublock * 512, sampler.pvc_peak,
               sampler.outside_peak, ok, note)  # fmt: skip


def make_model(root: Path, size: int, files: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    per = size // files
    block = os.urandom(16 * MiB)
    for i in range(files):
        with open(root / f"model-{i + 1:05d}-of-{files:05d}.safetensors", "wb") as fh:
            left = per
            n = 0
            while left > 0:
                # Vary each block cheaply so no two blocks (and no two files) are identical.
                chunk = (n.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])[
                    : min(left, len(block))
                ]
                fh.write(chunk)
                left -= len(chunk)
                n += 1
    (root / "config.json").write_text('{"model_type": "synthetic"}\n')


def fmt_table(rows: list[Row]) -> str:
    head = ["run", "wall s", "MiB/s", "peak RSS MiB", "written MiB", "PVC peak MiB", "tmp growth MiB", "ok"]
    lines = [head]
    for r in rows:
        lines.append([
            r.name, f"{r.wall:.1f}", f"{r.model_bytes / MiB / r.wall:.0f}", f"{r.rss / MiB:.0f}",
            f"{r.written / MiB:.0f}", f"{r.pvc_peak / MiB:.0f}" if r.pvc_peak else "-",
            f"{max(r.outside_peak, 0) / MiB:.0f}", "yes" if r.ok else f"NO: {r.note}",
        ])  # fmt: skip
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    out = []
    for n, row in enumerate(lines):
        out.append(" | ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)))
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4G", help="total model size (e.g. 512M, 4G); default 4G")
    ap.add_argument("--files", type=int, default=4, help="number of weight files (default 4)")
    ap.add_argument("--concurrency", type=int, default=4, help="native parallel uploads (default 4)")
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/model-image-push-bench"))
    ap.add_argument("--skip-buildah", action="store_true", help="leave out the slow buildah run")
    ap.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    args = ap.parse_args()
    size = parse_size(args.size)
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    py = [sys.executable, "-m", "controller.push"]
    regs: list[LocalRegistry] = []

    def registry(name: str) -> LocalRegistry:
        reg = LocalRegistry(work / f"reg-{name}")
        reg.start_sync()
        regs.append(reg)
        return reg

    rows: list[Row] = []
    try:
        src = work / "model"
        print(f"making a {size / MiB:.0f} MiB model in {args.files} files ...", file=sys.stderr)
        make_model(src, size, args.files)
        model_bytes = sum(p.stat().st_size for p in src.iterdir())
        a, b1, b2, b3, c = registry("a"), registry("b1"), registry("b2"), registry("b3"), registry("c")
        ins = lambda *regs_: [x for r in regs_ for x in ("--insecure-registry", r.host)]  # noqa: E731
        conc = ["--concurrency", str(args.concurrency)]

        def run(name: str, args_: list[str], pvc: Path | None = None) -> None:
            rows.append(measure(name, [*py, *args_], model_bytes, pvc, work))

        ref = "bench/model:v1"
        run("native build", ["build", "--context", str(src), "--image", f"{a.host}/{ref}", *ins(a), *conc])
        if not args.skip_buildah:
            pvc = work / "pvc-buildah"
            run("buildah bud+push", ["buildah", "--context", str(src), "--image", f"{c.host}/{ref}",
                                     "--storage", str(pvc), *ins(c)], pvc)  # fmt: skip
        pvc = work / "pvc-skopeo"
        run(
            "skopeo copy --preserve-digests",
            ["skopeo", f"{a.host}/{ref}", f"{b1.host}/{ref}", "--tmpdir", str(pvc), *ins(a, b1)],
            pvc,
        )
        # skopeo's own default (what a plain `skopeo copy` step does): recompresses the uncompressed
        # layers with gzip, so the digests change; TMPDIR on a PVC dir as in the compatibility mode.
        pvc = work / "pvc-skopeo-default"
        pvc.mkdir()
        no_tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        rows.append(measure("skopeo copy (default)",
                            ["env", f"TMPDIR={pvc}", "skopeo", "copy", "--all", *no_tls, f"docker://{a.host}/{ref}",
                             f"docker://{b3.host}/{ref}"], model_bytes, pvc, work))  # fmt: skip
        run("native copy", ["copy", f"{a.host}/{ref}", f"{b2.host}/{ref}", *ins(a, b2), *conc])
        run("native copy (mount)", ["copy", f"{a.host}/{ref}", f"{a.host}/other/model:v1", *ins(a), *conc])
    finally:
        for reg in regs:
            reg.stop_sync()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nmodel: {model_bytes / MiB:.0f} MiB in {args.files} files + config.json; "
          f"native concurrency {args.concurrency}; {os.cpu_count()} CPUs\n")  # fmt: skip
    print(fmt_table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
