"""Walking a model dir: sorting, symlink policy, special files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.push.errors import InvalidInput
from controller.push.scan import scan_context


def test_sorted_entries_kinds_and_dir_symlinks(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.bin").write_bytes(b"z")
    (tmp_path / "a.bin").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link-dir").symlink_to("b")
    (tmp_path / "link-file").symlink_to("b/z.bin")
    entries = scan_context(tmp_path)
    assert [(e.relpath, e.kind) for e in entries] == [
        ("a.bin", "file"),
        ("b/z.bin", "file"),
        ("empty", "dir"),
        ("link-dir", "symlink"),
        ("link-file", "symlink"),
    ]


@pytest.mark.parametrize("target", ["../outside", "/etc/passwd", "sub/../../x"])
def test_escaping_symlinks_refused(tmp_path: Path, target: str) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(b"")
    (tmp_path / "l").symlink_to(target)
    with pytest.raises(InvalidInput, match="'l'"):
        scan_context(tmp_path)


def test_chained_symlink_escape_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    model = tmp_path / "model"
    model.mkdir()
    (model / "hop").symlink_to(outside)  # absolute: refused already
    with pytest.raises(InvalidInput):
        scan_context(model)


def test_special_files_and_missing_dirs(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        scan_context(tmp_path / "nope")
    with pytest.raises(InvalidInput, match="empty"):
        scan_context(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InvalidInput, match="fifo"):
        scan_context(tmp_path)
