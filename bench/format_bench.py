"""What each output format costs: bytes uploaded, layers and wall time of one native build per format.

    .venv/bin/python bench/format_bench.py [--size 256M]

Makes a synthetic model (a config.json, one random safetensors file of --size, a tokenizer), starts a
fresh Debian docker-registry on loopback, and pushes it with the default base (busybox layer), base none,
format modelpack and format both, each into a new repository; then a ModelPack push into the repository
that already holds the modelcar image, which shows what the second manifest of `both` costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.model.quantity import parse_size  # noqa: E402
from hack.registry import LocalRegistry  # noqa: E402

RUNS = [
    ("default (busybox base)", "fmt/default:v1", []),
    ("base none", "fmt/bare:v1", ["--base", "none"]),
    ("format modelpack", "fmt/pack:v1", ["--format", "modelpack"]),
    ("format both", "fmt/both:v1", ["--format", "both"]),
    ("modelpack after modelcar", "fmt/default:pack", ["--format", "modelpack"]),
]


def build(host: str, model: Path, repo: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "controller.push", "build", "--context", str(model)]
    cmd += ["--image", f"{host}/{repo}", "--insecure-registry", host, "--model-name", "bench", *extra]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256M", help="size of the weights file (default 256M)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="format-bench-"))
    registry = LocalRegistry(work / "registry")
    registry.start_sync()
    try:
        model = work / "model"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"architectures": ["X"], "torch_dtype": "bfloat16"}))
        with open(model / "model.safetensors", "wb") as fh:
            left = parse_size(args.size)
            while left > 0:
                fh.write(os.urandom(min(left, 1 << 24)))
                left -= min(left, 1 << 24)
        (model / "tokenizer.json").write_text("{}")
        print(f"{'run':26} {'uploaded bytes':>15} {'skipped bytes':>15} {'layers':>6} {'seconds':>8}")
        for label, repo, extra in RUNS:
            res = build(registry.host, model, repo, extra)
            print(
                f"{label:26} {res['bytes_uploaded']:>15,} {res['bytes_skipped']:>15,} "
                f"{res['layers']:>6} {res['seconds']:>8.2f}"
            )
    finally:
        registry.stop_sync()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
