"""Deterministic tar layers: headers, PAX records, sizes, byte stream from any offset."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from controller.push.tarlayer import (
    BLOCK,
    Entry,
    LayerBody,
    group_entries,
    iter_layer_sync,
    layer_digest,
    normalise_mode,
    plan_layer,
    plan_layers,
)


def _read_all(plan, offset: int = 0) -> bytes:
    return b"".join(iter_layer_sync(plan, offset))


def test_layer_round_trips_through_tarfile(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"x" * 1234)
    plan = plan_layer(Entry("a/b/w.bin", "file", size=1234, mode=0o600, source=src), mtime=0)
    data = _read_all(plan)
    assert len(data) == plan.size and plan.size % BLOCK == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == ["models", "models/a", "models/a/b", "models/a/b/w.bin"]
        assert [m.isdir() for m in members] == [True, True, True, False]
        f = members[-1]
        assert (f.mode, f.uid, f.gid, f.mtime, f.uname) == (0o644, 0, 0, 0, "")
        assert tf.extractfile(f).read() == b"x" * 1234  # type: ignore[union-attr]


def test_stream_from_offset_is_a_suffix(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(bytes(range(256)) * 40)
    plan = plan_layer(Entry("w.bin", "file", size=10240, source=src), mtime=5)
    full = _read_all(plan)
    for off in (
        0,
        1,
        len(plan.parts[0]) - 1,
        len(plan.parts[0]),
        len(plan.parts[0]) + 777,
        plan.size - 3,
        plan.size,
    ):
        assert _read_all(plan, off) == full[off:]
    assert layer_digest(plan) == "sha256:" + hashlib.sha256(full).hexdigest()


def test_long_and_unicode_names_use_pax() -> None:
    name = "dir with space/ünïcødé/" + "x" * 150 + ".bin"
    plan = plan_layer(Entry(name, "file", size=0, source=None), mtime=0)
    data = _read_all(plan)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getmembers()[-1].name == "models/" + name
    assert b"path=models/" in data


def test_size_over_8_gib_goes_into_pax_record() -> None:
    size = 9 * (1 << 30)
    plan = plan_layer(Entry("huge.bin", "file", size=size, source=Path("/nonexistent")), mtime=0)
    header = plan.parts[0]
    assert isinstance(header, bytes) and f"size={size}".encode() in header
    assert plan.size == len(header) + size + (-size % BLOCK) + 2 * BLOCK


def test_symlink_and_empty_dir_entries() -> None:
    link = plan_layer(Entry("latest", "symlink", target="weights/a.bin"), mtime=0)
    with tarfile.open(fileobj=io.BytesIO(_read_all(link))) as tf:
        m = tf.getmembers()[-1]
        assert m.issym() and m.linkname == "weights/a.bin" and m.mode == 0o777
    d = plan_layer(Entry("cache/empty", "dir"), mtime=0)
    with tarfile.open(fileobj=io.BytesIO(_read_all(d))) as tf:
        assert [m.name for m in tf.getmembers()] == ["models", "models/cache", "models/cache/empty"]


def test_headers_are_deterministic_and_depend_on_mtime() -> None:
    e = Entry("a.bin", "file", size=3, mode=0o640, source=Path("/x"))
    assert plan_layer(e, 0).parts == plan_layer(e, 0).parts
    assert plan_layer(e, 0).parts != plan_layer(e, 1).parts


def test_modes_are_world_readable() -> None:
    assert normalise_mode(0o600, "file") == 0o644
    assert normalise_mode(0o700, "file") == 0o755
    assert normalise_mode(0o4755, "file") == 0o755  # no setuid in images
    assert normalise_mode(0o700, "dir") == 0o755


def test_segments_cover_exactly_the_requested_range(tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(bytes(range(256)) * 20)
    body = LayerBody(plan_layer(Entry("d/w.bin", "file", size=5120, source=src), mtime=0))
    full = _read_all(body.plan)
    for off, length in ((0, body.plan.size), (100, 2000), (1500, 5000), (body.plan.size - 10, 10)):
        got = b""
        for seg in body.segments(off, length):
            if isinstance(seg, bytes):
                got += seg
            else:
                path, foff, count = seg
                got += path.read_bytes()[foff : foff + count]
        assert got == full[off : off + length]


def test_layer_budget_groups_small_files(tmp_path: Path) -> None:
    entries = []
    for i, size in enumerate([10, 5000, 20, 3000, 0]):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"x" * size)
        entries.append(Entry(f"dir/f{i}", "file", size=size, source=p))
    assert group_entries(entries, 10) == [[e] for e in entries]
    groups = group_entries(entries, 3)
    assert groups == [[entries[1]], [entries[3]], [entries[0], entries[2], entries[4]]]
    plans = plan_layers(entries, 0, max_layers=3)
    assert [p.title for p in plans] == ["dir/f1", "dir/f3", "3 small files"]
    with tarfile.open(fileobj=io.BytesIO(_read_all(plans[2]))) as tf:
        names = [m.name for m in tf.getmembers()]
        assert names == ["models", "models/dir", "models/dir/f0", "models/dir/f2", "models/dir/f4"]
        assert tf.extractfile("models/dir/f2").read() == b"x" * 20  # type: ignore[union-attr]
