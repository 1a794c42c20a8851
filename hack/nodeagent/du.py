"""Disk use of directory trees, like `du` (allocated blocks, hard links counted once)."""

import os
from collections.abc import Iterable
from pathlib import Path


def disk_usage(roots: Iterable[Path]) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    stack: list[str] = []
    for r in roots:
        try:
            st = os.stat(r, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if os.path.isdir(r) and not os.path.islink(r):
            stack.append(str(r))
        elif (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    while stack:
        top = stack.pop()
        try:
            it = os.scandir(top)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += st.st_blocks * 512
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return total
