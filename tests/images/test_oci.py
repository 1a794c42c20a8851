"""The OCI layout writer: deterministic layers, complete parent directories, a valid index."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

from hack.images.oci import Entry, LayoutWriter, manifest_digest


def _write(root: Path, entries: list[Entry]) -> str:
    w = LayoutWriter(root)
    w.files_layer(entries, "test")
    return w.finish({"Entrypoint": ["/bin/x"]})


def test_same_inputs_give_the_same_digest(tmp_path: Path) -> None:
    entries = [Entry("b/x", data=b"1"), Entry("a", 0o755, data=b"2")]
    first = _write(tmp_path / "one", entries)
    second = _write(tmp_path / "two", list(reversed(entries)))
    assert first == second == manifest_digest(tmp_path / "one")


def test_layer_has_parents_owner_root_and_mtime_zero(tmp_path: Path) -> None:
    root = tmp_path / "img"
    w = LayoutWriter(root)
    layer = w.files_layer(
        [
            Entry("ko-app/tool", 0o755, data=b"#!"),
            Entry("tmp", 0o1777, kind="dir"),
            Entry("l", kind="symlink", target="ko-app/tool"),
        ],
        "test",
    )
    blob = (root / "blobs" / "sha256" / layer.digest.split(":")[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["ko-app", "ko-app/tool", "l", "tmp"]
    assert members["ko-app"].isdir() and members["ko-app"].mode == 0o755
    assert members["ko-app/tool"].mode == 0o755
    assert members["tmp"].mode == 0o1777
    assert members["l"].issym() and members["l"].linkname == "ko-app/tool"
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members.values())


def test_index_names_the_manifest_and_config_lists_diff_ids(tmp_path: Path) -> None:
    root = tmp_path / "img"
    w = LayoutWriter(root)
    layer = w.files_layer([Entry("f", data=b"x")], "test")
    digest = w.finish({"User": "1:1"})
    index = json.loads((root / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    manifest = json.loads((root / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    config = json.loads((root / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    assert config["rootfs"]["diff_ids"] == [layer.diff_id]
    assert manifest["layers"][0]["size"] == layer.size
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
