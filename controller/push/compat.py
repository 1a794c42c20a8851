"""Compatibility modes: run Debian's buildah / skopeo with all their storage on a given directory.

They stage whole layers on disk (that is why the native modes exist); here the disk is a PVC path the
controller sized. The result document has the same shape as the native modes'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .client import INDEX_TYPES, ClientOptions, RegistryClient
from .errors import AuthError, InvalidInput, RegistryError, Unreachable
from .reference import Reference, parse_reference
from .result import PushResult
from .session import basic_header

_AUTH_HINTS = ("unauthorized", "authentication required", "denied", "401")
_NET_HINTS = ("connection refused", "no such host", "i/o timeout", "no route to host", "dial tcp")


def remove_tree(path: Path) -> None:
    """Remove a storage directory, read-only directories included (buildah's vfs layers keep a base
    image's `dr-xr-xr-x` directories). Root ignores those modes; the image's non-root user must give
    itself the write bit on a directory before it can unlink what is inside."""

    def writable_then_retry(func: Callable[[str], object], failed: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed) and func is not os.rmdir:
                os.chmod(failed, stat.S_IRWXU)
                shutil.rmtree(failed, onerror=writable_then_retry)
            else:
                func(failed)
        except OSError:
            pass  # as ignore_errors: a leftover never fails a push that succeeded

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=writable_then_retry)


async def _run(cmd: list[str], env: dict[str, str]) -> None:
    """Run a tool, echoing its output to stderr; map a failure to our error tree."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    tail: list[str] = []
    async for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        sys.stderr.write(line + "\n")
        tail = [*tail[-20:], line]
    rc = await proc.wait()
    if rc == 0:
        return
    text = "\n".join(tail)[-1500:]
    low = text.lower()
    name = os.path.basename(cmd[0])
    if any(h in low for h in _AUTH_HINTS):
        raise AuthError(f"{name} failed with an authentication error: {text}")
    if any(h in low for h in _NET_HINTS):
        raise Unreachable(f"{name} could not reach the registry: {text}")
    raise RegistryError(f"{name} exited {rc}: {text}")


def _tls_flags(ref: Reference, opts: ClientOptions, flag: str) -> list[str]:
    host = ref.registry
    if host in opts.insecure or host.split(":")[0] in opts.insecure:
        return [f"{flag}=false"]
    return []


def _cert_dir(opts: ClientOptions, where: Path) -> Path | None:
    if opts.ca_file is None:
        return None
    where.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(opts.ca_file, where / "ca.crt")
    return where


def _auth_flags(opts: ClientOptions, where: Path) -> list[str]:
    """The merged credentials (--authfile, --auth-dir, --registry-token) as one owner-only auth.json
    for buildah/skopeo, in a directory the caller deletes when the tool is done."""
    if not opts.credentials:
        return []
    where.mkdir(parents=True, exist_ok=True)
    path = where / "auth.json"
    auths = {host: {"auth": basic_header(c).removeprefix("Basic ")} for host, c in opts.credentials.items()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"auths": auths}, fh)
    return ["--authfile", str(path)]


async def _describe(opts: ClientOptions, ref: Reference, digest: str) -> tuple[int, int]:
    """(size of config+layers, layer count) of what the tool pushed, read back from the registry."""
    size = layers = 0
    async with RegistryClient(opts) as client:
        raw, media_type, _ = await client.get_manifest(ref.registry, ref.repository, digest)
        docs = [json.loads(raw)]
        if media_type in INDEX_TYPES:
            docs = []
            for m in json.loads(raw).get("manifests", []):
                child, _, _ = await client.get_manifest(ref.registry, ref.repository, m["digest"])
                docs.append(json.loads(child))
        for doc in docs:
            size += int(doc["config"]["size"]) + sum(int(x["size"]) for x in doc.get("layers", []))
            layers += len(doc.get("layers", []))
    return size, layers


def _prepare_dirs(context: Path, *dirs: Path) -> None:
    if not context.is_dir():
        raise InvalidInput(f"--context {context}: directory does not exist")
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)


def _workdir(tmpdir: Path | None) -> Path:
    """A fresh dir for skopeo's temp files (under the PVC path when given), removed afterwards."""
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="skopeo-", dir=tmpdir))


def _result(image: str, ref: Reference, digest: str, size: int, layers: int, started: float) -> PushResult:
    return PushResult(
        image=image,
        digest=digest,
        url=f"{ref.name}@{digest}",
        size=size,
        layers=layers,
        bytes_uploaded=size,
        bytes_skipped=0,
        seconds=round(time.monotonic() - started, 3),
    )


async def run_buildah(args: argparse.Namespace, opts: ClientOptions) -> PushResult:
    started = time.monotonic()
    dst = parse_reference(args.image)
    context: Path = args.context
    storage: Path = args.storage
    root, runroot, tmp, home = (storage / n for n in ("root", "runroot", "tmp", "home"))
    _prepare_dirs(context, root, runroot, tmp, home)
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(home)}
    base = ["buildah", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs"]
    certs = _cert_dir(opts, storage / "certs")
    cert_flags = ["--cert-dir", str(certs)] if certs else []
    containerfile = args.containerfile
    if containerfile is None:
        containerfile = storage / "Containerfile"
        containerfile.write_text(f"FROM {args.base or 'scratch'}\nCOPY . /models/\n")
    elif not containerfile.is_file():
        raise InvalidInput(f"--containerfile {containerfile}: file not found")
    digestfile = storage / "digest"
    try:
        auth = _auth_flags(opts, tmp)  # tmp is removed below
        from_flags: list[str] = []
        if args.base:
            from_flags = _tls_flags(parse_reference(args.base), opts, "--tls-verify")
        await _run(
            [
                *base,
                "bud",
                *auth,
                *cert_flags,
                *from_flags,
                "-f",
                str(containerfile),
                "-t",
                str(dst),
                str(context),
            ],
            env,
        )
        await _run(
            [
                *base,
                "push",
                *auth,
                *cert_flags,
                *_tls_flags(dst, opts, "--tls-verify"),
                "--digestfile",
                str(digestfile),
                str(dst),
                f"docker://{dst}",
            ],
            env,
        )
        digest = digestfile.read_text().strip()
    finally:
        # The point of this mode's PVC: drop the tens of GB of staged layers as soon as we are done, and
        # the rest of the run's own storage dir (named for its pod) with them, so nothing piles up on the
        # user's volume run after run. (On an emptyDir the mount point itself stays; remove_tree ignores it.)
        remove_tree(storage)
    size, layers = await _describe(opts, dst, digest)
    return _result(args.image, dst, digest, size, layers, started)


async def run_skopeo(args: argparse.Namespace, opts: ClientOptions) -> PushResult:
    started = time.monotonic()
    src, dst = parse_reference(args.src), parse_reference(args.dst)
    work = _workdir(args.tmpdir)
    env = {**os.environ, "TMPDIR": str(work)}
    certs = _cert_dir(opts, work / "certs")
    cert_flags = ["--src-cert-dir", str(certs), "--dest-cert-dir", str(certs)] if certs else []
    digestfile = work / "digest"
    try:
        auth = _auth_flags(opts, work)  # work is removed below
        await _run(
            [
                "skopeo",
                "copy",
                "--all",
                "--preserve-digests",  # as the native copy: never recompress, digests unchanged
                *auth,
                *cert_flags,
                *_tls_flags(src, opts, "--src-tls-verify"),
                *_tls_flags(dst, opts, "--dest-tls-verify"),
                "--digestfile",
                str(digestfile),
                f"docker://{src}",
                f"docker://{dst}",
            ],
            env,
        )
        digest = digestfile.read_text().strip()
    finally:
        remove_tree(work)
        if args.tmpdir is not None:  # the run's own dir on the PVC (named for its pod): gone once empty
            with contextlib.suppress(OSError):
                args.tmpdir.rmdir()
    size, layers = await _describe(opts, dst, digest)
    return _result(args.dst, dst, digest, size, layers, started)
