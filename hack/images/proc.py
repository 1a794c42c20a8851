"""Runs the build tools (mmdebstrap, buildah, skopeo, go) with their output in a log file.

A failure raises `ImageBuildError` quoting the command and the end of its log, so the cause is
in the exception a test or `make` prints, not only in a file.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from hack.images.cache import cache_root

TAIL_LINES = 30


class ImageBuildError(RuntimeError):
    """An image could not be built or pushed; the message names the command and its last output."""


def log_path(name: str) -> Path:
    path = cache_root() / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def run(
    cmd: Sequence[str | Path],
    log: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: Path | None = None,
) -> str:
    """Runs `cmd`, appending stderr (and stdout unless captured to `stdout`) to `log`.

    Returns stdout as text when it is not redirected to a file.
    """
    argv = [str(c) for c in cmd]
    with open(log, "ab") as lf:
        lf.write(f"$ {shlex.join(argv)}\n".encode())
        lf.flush()
        out = open(stdout, "wb") if stdout else subprocess.PIPE
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=lf, stdin=subprocess.DEVNULL)
        finally:
            if stdout:
                out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        raise ImageBuildError(
            f"{shlex.join(argv)} exited {proc.returncode}; last lines of {log}:\n" + "\n".join(tail)
        )
    return proc.stdout.decode() if proc.stdout is not None else ""
