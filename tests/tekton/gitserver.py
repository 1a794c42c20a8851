"""A user's own git server for the git resolver: Debian's `git daemon` (git://, read-only, anonymous) on
the pod network's gateway, serving repositories made here with real commits."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import yaml

from hack.ports import free_port

ATTEMPTS = 5
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def make_repo(root: Path, name: str, files: dict[str, object], branch: str = "main") -> str:
    """A repository `root/name` whose one commit on `branch` holds `files` (path -> object, as YAML);
    returns the commit's sha1."""
    repo = root / name
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", branch, str(repo)], check=True)
    for path, obj in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(yaml.safe_dump(obj))
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), *GIT_ID, "commit", "-q", "-m", "tasks"], check=True)
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True)
    return out.stdout.decode().strip()


class GitDaemon:
    """`git daemon --export-all` for every repository under `root`, on `address`."""

    def __init__(self, root: Path, address: str, log: Path) -> None:
        self.root, self.address, self.log = root, address, log
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"git://{self.address}:{self.port}"

    def start(self) -> None:
        for _ in range(ATTEMPTS):  # another process may take the free port before the daemon binds it
            self.port = free_port()
            with open(self.log, "ab") as log:
                self._proc = subprocess.Popen(
                    [
                        "git", "daemon", "--export-all", "--reuseaddr", f"--base-path={self.root}",
                        f"--listen={self.address}", f"--port={self.port}", str(self.root),
                    ],
                    stdout=log,
                    stderr=log,
                )  # fmt: skip
            if self._wait_listening():
                return
            self.stop()
        raise RuntimeError(f"git daemon did not start on {self.address}; see {self.log}")

    def _wait_listening(self, within: float = 10.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None
