"""The installer on a machine without Go: it brings the pinned toolchain from the Go module proxy.

Runs the real `hack/install-deps.sh` with `go` taken off PATH, an empty project cache and an empty HOME,
stopping once `go version` works (INSTALL_DEPS_STOP_AFTER=go), so the check costs one toolchain download
(about 70 MB, 10-15 s) and no build. The system Go, if any, must come out untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GO_VERSION = re.search(r'GO_VERSION="\$\{GO_VERSION:-([0-9.]+)\}"', (REPO / "hack" / "go.sh").read_text())
# Debian's own directories: python3, bash and dpkg live here; a Debian golang-go (1.19) would be too old.
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def go_version(go: str) -> str:
    return subprocess.run(
        [go, "version"],
        env={"GOTOOLCHAIN": "local", "PATH": BARE_PATH},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_installer_fetches_go_when_none_is_on_path(tmp_path: Path) -> None:
    assert GO_VERSION, "hack/go.sh pins no GO_VERSION"
    version = GO_VERSION.group(1)
    system_go = shutil.which("go")
    system_before = go_version(system_go) if system_go else None
    on_bare_path = shutil.which("go", path=BARE_PATH)
    assert on_bare_path is None or f"go{version}" not in go_version(on_bare_path)
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": BARE_PATH,
        "HOME": str(home),
        "MODELPUSH_CACHE": str(cache),
        "INSTALL_DEPS_STOP_AFTER": "go",
        **{k: os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "GOPROXY") if k in os.environ},
    }
    out = subprocess.run(
        ["bash", "hack/install-deps.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"go version go{version} linux/" in out.stdout
    goroot = cache / "go" / f"go{version}"
    assert go_version(str(goroot / "bin" / "go")).startswith(f"go version go{version} ")
    assert not list((cache / "go").glob(".fetch.*")), "the download's temp dir was left behind"
    # a second run is a no-op: no download
    again = subprocess.run(
        ["bash", "hack/go.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert again.stdout.strip() == str(goroot / "bin") and "fetching" not in again.stderr
    # a Go older than the builds need (Debian's golang-go is 1.19) is passed over for the project's
    old = tmp_path / "old-go"
    old.mkdir()
    (old / "go").write_text("#!/bin/sh\necho go1.19.8\n")
    (old / "go").chmod(0o755)
    older = subprocess.run(
        ["bash", "hack/go.sh"],
        cwd=REPO,
        env={**env, "PATH": f"{old}:{BARE_PATH}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert older.stdout.strip() == str(goroot / "bin") and "go1.19.8" in older.stderr
    if system_go:
        assert go_version(system_go) == system_before
