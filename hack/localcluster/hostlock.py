"""One real-node cluster per host at a time.

Real nodes change machine-global things (iptables, sysctls, cgroups), and kube-proxy owns every ``KUBE-*``
chain, so two such clusters would undo each other. A cluster with real nodes holds ``flock`` on LOCK for as
long as it runs, through a small holder process recorded with the cluster's other processes (so the lock
outlives `make cluster-up` and goes with `make cluster-down`). ``flock /tmp/modelpush-realnode.lock make
test`` takes the same lock from a shell; clusters started below it see their ancestor holding it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

LOCK = Path(os.environ.get("MODELPUSH_REALNODE_LOCK", "/tmp/modelpush-realnode.lock"))
NAME = "realnode-lock"
_HOLDER = (
    "import fcntl, os, signal, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666); "
    "fcntl.flock(fd, fcntl.LOCK_EX); signal.pause()"
)


class HostBusy(RuntimeError):
    pass


def holders() -> set[int]:
    """Pids holding a flock on LOCK (from /proc/locks)."""
    try:
        ino = os.stat(LOCK).st_ino
        rows = [ln.split() for ln in Path("/proc/locks").read_text().splitlines()]
    except OSError:
        return set()
    return {int(f[4]) for f in rows if len(f) > 5 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(ino)}


def held_by_ancestor() -> bool:
    held, pid = holders(), os.getpid()
    while pid > 1:
        if pid in held:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def hold(spawn: Callable[[str, list[str]], int], outlives_us: bool, timeout: float = 1800.0) -> None:
    """Makes sure the lock is held for the cluster's life: by a holder process spawned here, or by an
    ancestor (`flock ... pytest`). A cluster that outlives us (`make cluster-up` run under flock) still
    gets its holder, which takes the lock over when the ancestor lets go."""
    by_ancestor = held_by_ancestor()
    if by_ancestor and not outlives_us:
        return
    LOCK.touch(exist_ok=True)
    pid = spawn(NAME, [sys.executable, "-c", _HOLDER, str(LOCK)])
    if by_ancestor:
        return
    deadline = time.monotonic() + timeout
    while pid not in holders():
        if time.monotonic() > deadline:
            raise HostBusy(f"another real-node cluster holds {LOCK} (waited {timeout:.0f}s)")
        time.sleep(0.5)
