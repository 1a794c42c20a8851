"""Push throughput of the native build on each registry of the matrix, per upload strategy.

    .venv/bin/python bench/registry_bench.py [--size 1G] [--files 2] [--workdir DIR]

Starts a fresh registry of each kind (hack/registry.py: Debian's docker-registry 2.8, distribution v3,
go-containerregistry) on loopback, writes a synthetic model (random bytes) once, and runs
`python -m controller.push build` into each registry with `--upload streamed`, `chunked:16Mi` and
`monolithic`, one run each. Prints wall seconds and MiB/s (model bytes / wall) per cell, as the README's
compatibility table shows them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.push_bench import make_model  # noqa: E402
from controller.model.quantity import parse_size  # noqa: E402
from hack.registry import KINDS, LocalRegistry  # noqa: E402

MiB = 1 << 20
STRATEGIES = ("streamed", "chunked:16Mi", "monolithic")


def push(reg: LocalRegistry, model: Path, strategy: str, repo: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "controller.push", "build", "--context", str(model)]
    cmd += ["--image", f"{reg.host}/{repo}:v1", "--insecure-registry", reg.host, "--upload", strategy]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    note = (
        "" if proc.returncode == 0 else (proc.stdout.strip().splitlines() or [proc.stderr[-200:]])[-1][:200]
    )
    return wall, note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G", help="total model size (e.g. 512M, 4G); default 1G")
    ap.add_argument("--files", type=int, default=2, help="number of weight files (default 2)")
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/model-image-push-registry-bench"))
    args = ap.parse_args()
    size = parse_size(args.size)
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    model = work / "model"
    make_model(model, size, args.files)
    print(f"model: {size / MiB:.0f} MiB in {args.files} files; one run per cell", flush=True)
    print("| registry | " + " | ".join(f"{s} MiB/s (s)" for s in STRATEGIES) + " |")
    print("|---|" + "---|" * len(STRATEGIES))
    try:
        for kind in KINDS:
            cells = []
            for i, strategy in enumerate(STRATEGIES):
                # A fresh registry per run, so no run skips blobs an earlier one left behind.
                reg = LocalRegistry(work / f"reg-{kind}-{i}", kind=kind)
                reg.start_sync()
                try:
                    wall, note = push(reg, model, strategy, f"bench/{i}")
                finally:
                    reg.stop_sync()
                    shutil.rmtree(reg.root, ignore_errors=True)
                cells.append(f"failed: {note}" if note else f"{size / MiB / wall:.0f} ({wall:.1f})")
            print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
