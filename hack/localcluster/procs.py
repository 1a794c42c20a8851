"""Background processes in their own process groups, tracked by pid files so `down` can stop them later."""

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def term_when_parent_dies() -> None:
    # Runs in the child before exec: SIGTERM it if the process that started it dies (e.g. a killed pytest),
    # so test clusters never outlive their test run.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    name: str,
    argv: Sequence[str],
    piddir: Path,
    logdir: Path,
    env: dict[str, str] | None = None,
    die_with_parent: bool = False,
    cwd: Path | None = None,
) -> int:
    """Starts ``argv`` detached in a new session (so its whole group can be killed) and records its pid."""
    piddir.mkdir(parents=True, exist_ok=True)
    logdir.mkdir(parents=True, exist_ok=True)
    with open(logdir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
            close_fds=True,
            preexec_fn=term_when_parent_dies if die_with_parent else None,
        )
    record_pid(piddir, name, proc.pid)
    return proc.pid


def record_pid(piddir: Path, name: str, pid: int) -> None:
    """Tracks `pid` under `name` (with its start time, see read_pid) so stop_recorded can stop it later."""
    (piddir / f"{name}.pid").write_text(f"{pid} {_start_time(pid)}\n")


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: with the pid it identifies a process even after pid reuse."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def read_pid(piddir: Path, name: str) -> int | None:
    """The recorded pid, or None if the file is missing or the pid now belongs to another process."""
    try:
        fields = (piddir / f"{name}.pid").read_text().split()
        pid = int(fields[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    if len(fields) > 1 and _start_time(pid) not in ("", fields[1]):
        return None  # stale pid file (e.g. after a reboot): never signal an unrelated process
    return pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat.rsplit(")", 1)[1].split()[0]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left in the group count as gone.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL what is left after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _group_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_recorded(piddir: Path, names: Sequence[str], grace: float = 10.0) -> None:
    """Stops the named processes in order (dependants first) and removes their pid files. One that cannot
    be stopped (e.g. PermissionError) does not leave the others running: the first error is raised last."""
    errors: list[BaseException] = []
    for name in names:
        pid = read_pid(piddir, name)
        if pid is None:
            continue
        try:
            stop_group(pid, grace)
        except Exception as err:
            errors.append(err)
            continue
        (piddir / f"{name}.pid").unlink(missing_ok=True)
    if errors:
        raise errors[0]
