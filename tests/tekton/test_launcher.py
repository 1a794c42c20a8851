"""The out-of-cluster Tekton launcher cannot outlive the process that started it (issue 14: a killed or
failed test run must never leave a Tekton controller holding :8080)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_controller_it_spawns_dies_with_its_parent(tmp_path: Path) -> None:
    # A stand-in binary: the launcher's own _spawn (session, env, flags, parent-death signal) runs it.
    fake = tmp_path / "tekton-pipelines-controller"
    fake.write_text("#!/bin/sh\nexec sleep 300\n")
    fake.chmod(0o755)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from hack.tekton.launcher import TektonController\n"
            "c = TektonController(Path(sys.argv[1]), Path(sys.argv[2]), version='v1.9.1')\n"
            "c._spawn(Path(sys.argv[3]))\n"
            "print(c.proc.pid, flush=True)\n"
            "time.sleep(300)\n",
            str(tmp_path / "kubeconfig"),
            str(tmp_path / "work"),
            str(fake),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)  # no finally, no stop(): only the kernel can clean up
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), f"controller {child} outlived the process that started it"
    finally:
        parent.kill()
        if child and _alive(child):  # leave nothing behind even when the assertion failed
            os.killpg(child, signal.SIGKILL)
