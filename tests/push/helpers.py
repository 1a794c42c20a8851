"""Helpers for push tests: run the CLI as a subprocess, make model trees, verify images with skopeo."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliRun:
    rc: int
    result: dict
    stderr: str
    stdout: str


def run_cli(*args: str, result_file: Path | None = None, env: dict[str, str] | None = None) -> CliRun:
    cmd = [sys.executable, "-m", "controller.push", *args]
    if result_file is not None:
        cmd += ["--result-file", str(result_file)]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}  # --help and the like
    return CliRun(proc.returncode, result, proc.stderr, proc.stdout)


def run_build(
    registry_host: str, ctx: Path, repo: str, *extra: str, env: dict[str, str] | None = None
) -> CliRun:
    """`build` of `ctx` into `registry_host/repo` over plain HTTP (a test image, or the build under test)."""
    return run_cli(
        "build",
        "--context",
        str(ctx),
        "--image",
        f"{registry_host}/{repo}",
        "--insecure-registry",
        registry_host,
        *extra,
        env=env,
    )


def make_tree(root: Path) -> Path:
    """Nested dirs, unicode and space names, an empty file, an executable, symlinks to a file and a dir."""
    (root / "sub dir" / "ünï cødé").mkdir(parents=True)
    (root / "weights").mkdir()
    (root / "empty-dir").mkdir()
    (root / "config.json").write_text('{"model_type": "tiny"}\n')
    (root / "empty.bin").write_bytes(b"")
    (root / "weights" / "model-00001.safetensors").write_bytes(os.urandom(300_000))
    (root / "sub dir" / "ünï cødé" / "tokenizer model.json").write_text("{}" * 1000)
    long_name = "a" * 120 + ".txt"  # > 100 chars: needs a PAX path record
    (root / "sub dir" / long_name).write_text("long\n")
    run = root / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o700)
    secret = root / "private.txt"
    secret.write_text("owner-only but world-readable in the image\n")
    secret.chmod(0o600)
    (root / "latest.safetensors").symlink_to("weights/model-00001.safetensors")
    (root / "w").symlink_to("weights")
    (root / "sub dir" / "up.json").symlink_to("../config.json")
    return root


def authfile(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def skopeo_to_dir(ref: str, dest: Path, *extra: str) -> dict:
    """An independent client pulls the image to a `dir:` layout; returns its manifest."""
    subprocess.run(
        ["skopeo", "copy", *extra, f"docker://{ref}", f"dir:{dest}"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return json.loads((dest / "manifest.json").read_text())


def skopeo_manifest(ref: str, *extra: str) -> tuple[str, dict]:
    """An independent client reads the manifest as the registry serves it: (sha256 of its bytes, manifest)."""
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", *extra, f"docker://{ref}"],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest(), json.loads(raw)


def expected_files(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """models/<rel> -> (kind, mode, bytes-or-link-target) as the image must contain them."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in [*filenames, *dirnames]:
            p = base / name
            rel = "models/" + p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0o777, os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                out[rel] = ("file", mode, p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", 0o755, b"")
    return out


def image_files(layout: Path, manifest: dict) -> dict[str, tuple[str, int, bytes | str]]:
    """Apply the layers (read with Python's tarfile, not our writer) into a path -> entry map."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for layer in manifest["layers"]:
        with tarfile.open(layout / layer["digest"].split(":", 1)[1]) as tf:
            for m in tf.getmembers():
                assert m.uid == 0 and m.gid == 0, m.name
                name = m.name.rstrip("/")
                if m.isdir():
                    out[name] = ("dir", m.mode, b"")
                elif m.issym():
                    out[name] = ("symlink", m.mode, m.linkname)
                elif m.isfile():
                    f = tf.extractfile(m)
                    assert f is not None
                    out[name] = ("file", m.mode, f.read())
    out.pop("models", None)
    return out
