"""Deterministic tar layers (pure, except reading the files' bytes when streamed).

A layer is a sequence of parts: in-memory bytes (directory headers for every parent under `models/`, an
entry's header with PAX records for long or non-ASCII names and sizes >= 8 GiB, zero padding to 512, the
two-block end-of-archive marker) and file regions streamed from disk. Its exact size is known before
reading any file, and the same inputs always give the same bytes, so the digest only depends on content.
Normally a layer holds one file; past a layer budget the smallest files share one layer (see group_entries).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InvalidInput

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)
PREFIX = "models"
DIR_MODE = 0o755
READ_CHUNK = 1 << 20
# Overlay filesystems stack at most ~128 layers (containerd/CRI-O fail beyond that), and base images
# bring their own; past this many layers the smallest files are packed together into one layer.
DEFAULT_MAX_LAYERS = 100


@dataclass(frozen=True)
class Entry:
    """One thing under the context dir (file, symlink or empty directory)."""

    relpath: str  # POSIX, relative to the context dir, no leading ./
    kind: str  # "file" | "symlink" | "dir"
    size: int = 0
    mode: int = 0o644
    target: str = ""  # symlink target, verbatim
    source: Path | None = None  # file to stream, for kind == "file"


@dataclass(frozen=True)
class FilePart:
    path: Path
    size: int


Part = bytes | FilePart


@dataclass(frozen=True)
class LayerPlan:
    """Everything needed to produce a layer's bytes, without having read any file."""

    title: str
    parts: tuple[Part, ...]

    @property
    def size(self) -> int:
        return sum(p.size if isinstance(p, FilePart) else len(p) for p in self.parts)

    @property
    def files(self) -> list[FilePart]:
        return [p for p in self.parts if isinstance(p, FilePart)]


def normalise_mode(mode: int, kind: str) -> int:
    """World-readable modes (OpenShift runs as a random UID): 0644, or 0755 if any execute bit was set."""
    if kind == "dir":
        return DIR_MODE
    if kind == "symlink":
        return 0o777
    return 0o755 if mode & 0o111 else 0o644


def tar_header(name: str, kind: str, *, size: int = 0, mode: int, mtime: int, target: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
    info.size = size if kind == "file" else 0
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = target
    # PAX adds records only when needed (long/non-ASCII names, size >= 8 GiB), so headers stay plain
    # ustar for ordinary files; the output depends only on these fields.
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _entry_parts(entry: Entry, mtime: int, emitted_dirs: set[str]) -> list[Part]:
    path = PurePosixPath(PREFIX, entry.relpath)
    header = b""
    for parent in reversed(path.parents):
        name = str(parent)
        if name == "." or name in emitted_dirs:
            continue
        emitted_dirs.add(name)
        header += tar_header(name, "dir", mode=DIR_MODE, mtime=mtime)
    header += tar_header(
        str(path),
        entry.kind,
        size=entry.size,
        mode=normalise_mode(entry.mode, entry.kind),
        mtime=mtime,
        target=entry.target,
    )
    parts: list[Part] = [header]
    if entry.kind == "file" and entry.size:
        assert entry.source is not None
        parts += [FilePart(entry.source, entry.size), bytes(-entry.size % BLOCK)]
    return parts


def _merge(parts: list[Part]) -> tuple[Part, ...]:
    """Join adjacent in-memory parts (fewer, larger writes); drop empty ones."""
    out: list[Part] = []
    for p in parts:
        if isinstance(p, bytes):
            if not p:
                continue
            if out and isinstance(out[-1], bytes):
                out[-1] = out[-1] + p
                continue
        out.append(p)
    return tuple(out)


def plan_layer(entry: Entry, mtime: int) -> LayerPlan:
    """One entry under models/, with a directory entry for each parent."""
    return plan_group([entry], mtime, entry.relpath)


def plan_group(entries: list[Entry], mtime: int, title: str) -> LayerPlan:
    """Several entries in one layer (each parent directory once), in the given order."""
    emitted: set[str] = set()
    parts: list[Part] = []
    for e in entries:
        parts += _entry_parts(e, mtime, emitted)
    parts.append(END_OF_ARCHIVE)
    return LayerPlan(title, _merge(parts))


def group_entries(entries: list[Entry], max_layers: int) -> list[list[Entry]]:
    """One entry per layer, unless that exceeds `max_layers`: then the largest `max_layers - 1` files keep
    their own layer and everything else shares the last one. Order follows `entries` (sorted paths)."""
    if max_layers < 1:
        raise InvalidInput("--max-layers must be at least 1")
    if len(entries) <= max_layers:
        return [[e] for e in entries]
    by_size = sorted(range(len(entries)), key=lambda i: (-entries[i].size, i))
    own = set(by_size[: max_layers - 1])
    groups = [[entries[i]] for i in sorted(own)]
    groups.append([e for i, e in enumerate(entries) if i not in own])
    return groups


def plan_layers(entries: list[Entry], mtime: int, max_layers: int = DEFAULT_MAX_LAYERS) -> list[LayerPlan]:
    return plan_groups(group_entries(entries, max_layers), mtime)


def plan_groups(groups: list[list[Entry]], mtime: int) -> list[LayerPlan]:
    """One plan per group of `group_entries`, in order."""
    plans = []
    for group in groups:
        if len(group) == 1:
            plans.append(plan_layer(group[0], mtime))
        else:
            plans.append(plan_group(group, mtime, f"{len(group)} small files"))
    return plans


def iter_layer_sync(plan: LayerPlan, offset: int = 0, chunk: int = 4 << 20) -> Iterator[bytes]:
    """The layer's bytes from `offset`, synchronously (used for hashing in a worker thread)."""
    pos = 0
    for part in plan.parts:
        size = part.size if isinstance(part, FilePart) else len(part)
        if offset >= pos + size:
            pos += size
            continue
        skip = max(offset - pos, 0)
        if isinstance(part, bytes):
            yield part[skip:]
        else:
            with open(part.path, "rb") as fh:
                fh.seek(skip)
                left = size - skip
                while left > 0:
                    buf = fh.read(min(chunk, left))
                    if not buf:
                        raise InvalidInput(
                            f"file {str(part.path)!r} shrank while pushing; do not modify the model"
                        )
                    left -= len(buf)
                    yield buf
        pos += size


def layer_digest(plan: LayerPlan) -> str:
    """sha256 of the layer (hashlib releases the GIL on large buffers, so run this in a thread)."""
    h = hashlib.sha256()
    for buf in iter_layer_sync(plan):
        h.update(buf)
    _check_unchanged(plan)
    return "sha256:" + h.hexdigest()


def _check_unchanged(plan: LayerPlan) -> None:
    for f in plan.files:
        if os.stat(f.path).st_size != f.size:
            raise InvalidInput(f"file {str(f.path)!r} changed size while pushing; do not modify the model")


class LayerBody:
    """A BodySource for the client (call it with an offset for an async byte stream), plus `segments`
    so a plain-HTTP upload can hand the file region to the kernel (sendfile) instead of copying it."""

    def __init__(self, plan: LayerPlan, chunk: int = READ_CHUNK) -> None:
        self.plan = plan
        self.chunk = chunk

    async def __call__(self, offset: int) -> AsyncIterator[bytes]:
        it = iter_layer_sync(self.plan, offset, self.chunk)
        sentinel = object()
        try:
            while True:
                buf = await asyncio.to_thread(next, it, sentinel)
                if buf is sentinel:
                    return
                yield buf  # type: ignore[misc]
        finally:
            it.close()

    def segments(self, offset: int, length: int) -> list[bytes | tuple[Path, int, int]]:
        """Bytes [offset, offset+length) as in-memory pieces and (file, file_offset, count) regions."""
        end = offset + length
        out: list[bytes | tuple[Path, int, int]] = []
        pos = 0
        for part in self.plan.parts:
            size = part.size if isinstance(part, FilePart) else len(part)
            lo, hi = max(pos, offset), min(pos + size, end)
            if lo < hi:
                if isinstance(part, bytes):
                    out.append(part[lo - pos : hi - pos])
                else:
                    out.append((part.path, lo - pos, hi - lo))
            pos += size
        return out


def layer_source(plan: LayerPlan, chunk: int = READ_CHUNK) -> LayerBody:
    return LayerBody(plan, chunk)
