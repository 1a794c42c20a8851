"""The image cache outside the repo: one OCI layout per image, named `<name>-<key>` by content key.

A key is the sha256 of everything that decides an image's bytes (recipe version, input files, base
digest), so a warm run finds the layout and builds nothing. Builds write to a temporary sibling and
rename it into place, under a per-name file lock, so two processes never build the same image twice
or see a half-written layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

KEY_CHARS = 16  # hex characters of the sha256 used in directory names and tags


def cache_root() -> Path:
    base = os.environ.get("MODELPUSH_CACHE") or str(Path.home() / ".cache" / "model-image-push")
    return Path(base) / "images"


class Key:
    """Accumulates labelled inputs into one sha256; the label keeps `a`+`bc` apart from `ab`+`c`."""

    def __init__(self, recipe: str) -> None:
        self._h = hashlib.sha256()
        self.add("recipe", recipe.encode())

    def add(self, label: str, data: bytes) -> Key:
        self._h.update(f"{label}\0{len(data)}\0".encode())
        self._h.update(data)
        return self

    def add_file(self, label: str, path: Path) -> Key:
        st = path.stat()
        self.add(f"{label}:mode", oct(st.st_mode & 0o7777).encode())
        return self.add(label, file_sha256(path).encode())

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:KEY_CHARS]


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def build_slot(name: str, key: str) -> Iterator[tuple[Path, Path | None]]:
    """Yields (final dir, temp dir to build into or None when the layout is already cached).

    The temp dir is renamed to the final dir when the block ends without an exception.
    """
    root = cache_root()
    final = root / f"{name}-{key}"
    with _locked(root / f".{name}.lock"):
        if (final / "index.json").exists():
            yield final, None
            return
        tmp = root / f".{name}-{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield final, tmp
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def locked(name: str) -> contextlib.AbstractContextManager[None]:
    """A lock shared by every process using the cache, e.g. around the private buildah store."""
    return _locked(cache_root() / f".{name}.lock")


def prune(keep: int = 2) -> list[Path]:
    """Deletes all but the `keep` newest layouts of each image name; returns what was deleted."""
    root = cache_root()
    by_name: dict[str, list[Path]] = {}
    for d in root.glob("*-*"):
        if d.is_dir() and (d / "index.json").exists():
            by_name.setdefault(d.name.rsplit("-", 1)[0], []).append(d)
    gone: list[Path] = []
    for name, dirs in by_name.items():
        with _locked(root / f".{name}.lock"):
            for d in sorted(dirs, key=lambda p: p.stat().st_mtime, reverse=True)[keep:]:
                shutil.rmtree(d)
                gone.append(d)
    return gone
