"""Walk a model directory into sorted layer entries, refusing anything unsafe (symlinks leaving the tree)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InvalidInput
from .tarlayer import Entry


def _sort_key(relpath: str) -> bytes:
    # Byte order of the UTF-8 path: stable across locales and machines.
    return relpath.encode("utf-8", "surrogateescape")


def _check_link(root: Path, rel: str, target: str) -> None:
    """A symlink must stay inside the tree, textually and after resolving chains."""
    if os.path.isabs(target):
        raise InvalidInput(
            f"symlink {rel!r} -> {target!r} is absolute; only relative links inside the model are kept"
        )
    joined = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if joined == ".." or joined.startswith("../"):
        raise InvalidInput(f"symlink {rel!r} -> {target!r} points outside the model directory")
    real = os.path.realpath(root / rel)
    root_real = os.path.realpath(root)
    if real != root_real and not real.startswith(root_real + os.sep):
        raise InvalidInput(f"symlink {rel!r} -> {target!r} resolves outside the model directory ({real})")


def scan_context(root: Path) -> list[Entry]:
    """Files, symlinks and empty directories under `root`, sorted; one layer each."""
    if not root.exists():
        raise InvalidInput(f"--context {root}: directory does not exist")
    if root.is_symlink() or not root.is_dir():
        raise InvalidInput(f"--context {root}: not a directory")
    entries: list[Entry] = []

    def onerror(exc: OSError) -> None:
        raise InvalidInput(f"cannot read {exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        base = Path(dirpath)
        names = list(filenames)
        kept_dirs = []
        for d in dirnames:
            if (base / d).is_symlink():
                names.append(d)  # a link to a directory is kept as a link, never followed
            else:
                kept_dirs.append(d)
        dirnames[:] = kept_dirs
        rel_dir = base.relative_to(root).as_posix()
        if rel_dir != "." and not names and not kept_dirs:
            entries.append(Entry(rel_dir, "dir", mode=0o755))
        for name in names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                _check_link(root, rel, target)
                entries.append(Entry(rel, "symlink", target=target))
            elif stat.S_ISREG(st.st_mode):
                if not os.access(path, os.R_OK):
                    raise InvalidInput(f"file {rel!r} is not readable")
                entries.append(Entry(rel, "file", size=st.st_size, mode=st.st_mode & 0o7777, source=path))
            else:
                raise InvalidInput(
                    f"{rel!r} is not a regular file, directory or symlink; remove it from the model"
                )
    if not entries:
        raise InvalidInput(f"--context {root}: directory is empty, nothing to push")
    entries.sort(key=lambda e: _sort_key(e.relpath))
    return entries
