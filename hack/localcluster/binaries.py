"""Locates the control-plane binaries built (and cached) by hack/build-control-plane.sh."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def bin_dir() -> Path:
    """``$MODELPUSH_BIN_DIR`` if set, else whatever the build script prints (a no-op when cached)."""
    env = os.environ.get("MODELPUSH_BIN_DIR")
    if env:
        d = Path(env)
    else:
        out = subprocess.run(
            ["bash", str(REPO / "hack" / "build-control-plane.sh")],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        d = Path(out.strip().splitlines()[-1])
    missing = [n for n in NAMES if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"control-plane binaries missing in {d}: {missing}; run hack/build-control-plane.sh"
        )
    return d
