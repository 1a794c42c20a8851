"""`make demo`'s non-interactive path, run as a real subprocess on real nodes with a 100M model (smaller
models leave buildah's staging on the node for less than the kubelet's 10 s eviction check): every check
passes, the key lines are printed, and nothing it started is left behind (also after Ctrl-C)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv" / "bin" / "python")

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def demo(workdir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [PY, "-m", "hack.demo", "--size", "100M", "--workdir", str(workdir), *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (every process the demo starts is given a path
    inside its workdir: etcd's data dir, certificates, kubeconfigs, the registry's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


def assert_nothing_left(workdir: Path) -> None:
    deadline = time.monotonic() + 15
    left = processes_mentioning(str(workdir))
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = processes_mentioning(str(workdir))
    assert not left, f"processes left running: {left}"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short path: containerd's sockets live under it, and a unix socket path has at most 104 bytes
    (pytest's tmp_path is too long for `.../nodes/local-node-1/containerd.sock.ttrpc`)."""
    root = Path(tempfile.mkdtemp(prefix="demo-", dir="/tmp"))
    yield root / "d"
    shutil.rmtree(root, ignore_errors=True)


def test_demo_runs_green_and_cleans_up(workdir: Path) -> None:
    proc = demo(workdir)
    out, _ = proc.communicate(timeout=900)
    sys.stdout.write(out)  # shown by pytest on failure
    assert proc.returncode == 0, out[-4000:]
    assert "Demo finished in" in out and "all checks passed" in out
    assert "FAIL" not in out
    # (b) the in-cluster Tekton reconciled the PipelineRun (there is no plain-CustomRun fallback)
    assert "ok    PipelineRun demo-native succeeded (Succeeded)" in out
    # (c) the run was followed, (d) result printed and verified with skopeo
    assert "Succeeded (pod Succeeded)" in out
    for key in ("  image ", "  digest   sha256:", "  size ", "  time "):
        assert key in out, key
    assert "7/7 files, sha256 all match" in out
    # (e) buildah on the small node evicted, with the kubelet's message, next to the native run
    assert "reason   EphemeralStorageExhausted" in out
    assert "Pod ephemeral local storage usage exceeds the total limit of containers" in out
    assert "native build  local-node-1" in out and "buildah       local-small" in out
    # (f) torn down
    assert "Stopped every process the demo started" in out
    assert not workdir.exists()
    assert_nothing_left(workdir)


def test_ctrl_c_tears_everything_down(workdir: Path) -> None:
    proc = demo(workdir)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    # Interrupt once the control plane, real nodes and registry run (processes exist to be cleaned up).
    for line in proc.stdout:
        lines.append(line)
        if "Installing Tekton" in line or "Traceback" in line or time.monotonic() > deadline:
            break
    assert any("Installing Tekton" in ln for ln in lines), "".join(lines)
    assert processes_mentioning(str(workdir)), "expected the demo's processes to be running"
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode != 0, out
    assert "interrupted" in out
    assert_nothing_left(workdir)
