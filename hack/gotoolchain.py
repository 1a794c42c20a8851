"""The `go` binary for Python callers: the one hack/go.sh picks (PATH's if new enough, else the project's)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

GO_SH = Path(__file__).with_name("go.sh")


@functools.cache
def go_binary() -> str:
    out = subprocess.run(["bash", str(GO_SH)], check=True, capture_output=True, text=True)
    return str(Path(out.stdout.strip()) / "go")
