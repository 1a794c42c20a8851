"""Writes OCI image layouts (image-spec v1.1) from tar streams and file lists, deterministically.

Layers are gzip'd while two sha256 run: one over the tar (the config's diff_id) and one over the
gzip (the blob digest), so nothing is read twice. Tar entries from `files_layer` have uid/gid 0,
mtime 0 and sorted names, so the same inputs give the same digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
TAG = "latest"  # every cached layout holds one image under this tag
EPOCH = "1970-01-01T00:00:00Z"
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Layer:
    digest: str
    diff_id: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One tar member: a file (from bytes or a host path), a directory or a symlink."""

    path: str  # inside the image, no leading slash
    mode: int = 0o644
    data: bytes | None = None
    source: Path | None = None
    kind: str = "file"  # file | dir | symlink
    target: str = ""  # symlink target


class _Blob:
    """A file-like sink that gzips, hashes both sides and writes one blob."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = hashlib.sha256()
        self.packed = hashlib.sha256()
        self.size = 0
        self._f = open(path, "wb")
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip header, mtime 0

    def write(self, data: bytes) -> int:
        self.raw.update(data)
        self._emit(self._z.compress(data))
        return len(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self.packed.update(data)
            self.size += len(data)
            self._f.write(data)

    def close(self) -> None:
        self._emit(self._z.flush())
        self._f.close()


class LayoutWriter:
    """Builds one image into an empty directory: add layers, then `finish` with the image config."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.layers: list[Layer] = []
        self.history: list[dict[str, object]] = []

    def _store(self, blob: _Blob) -> str:
        digest = blob.packed.hexdigest()
        os.replace(blob.path, self.blobs / digest)
        return f"sha256:{digest}"

    def tar_layer(self, stream: BinaryIO, created_by: str) -> Layer:
        """A layer from an uncompressed tar stream (e.g. mmdebstrap's output)."""
        blob = _Blob(self.root / "layer.partial")
        shutil.copyfileobj(stream, blob, 1 << 20)  # type: ignore[misc]
        blob.close()
        return self._add(blob, created_by)

    def files_layer(self, entries: list[Entry], created_by: str) -> Layer:
        blob = _Blob(self.root / "layer.partial")
        with tarfile.open(fileobj=blob, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for e in _with_parents(entries):
                info = tarfile.TarInfo(e.path)
                info.mode, info.mtime, info.uid, info.gid = e.mode, 0, 0, 0
                if e.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif e.kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, e.target
                    tar.addfile(info)
                elif e.source is not None:
                    info.size = e.source.stat().st_size
                    with open(e.source, "rb") as f:
                        tar.addfile(info, f)
                else:
                    data = e.data or b""
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        blob.close()
        return self._add(blob, created_by)

    def _add(self, blob: _Blob, created_by: str) -> Layer:
        layer = Layer(self._store(blob), f"sha256:{blob.raw.hexdigest()}", blob.size)
        self.layers.append(layer)
        self.history.append({"created": EPOCH, "created_by": created_by})
        return layer

    def _json_blob(self, doc: dict[str, object]) -> tuple[str, int]:
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    def finish(self, config: dict[str, object], annotations: dict[str, str] | None = None) -> str:
        """Writes config, manifest, index.json and oci-layout; returns the manifest digest."""
        cfg_digest, cfg_size = self._json_blob(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": EPOCH,
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": [la.diff_id for la in self.layers]},
                "history": self.history,
            }
        )
        manifest: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": cfg_digest, "size": cfg_size},
            "layers": [
                {"mediaType": MEDIA_LAYER_GZIP, "digest": la.digest, "size": la.size} for la in self.layers
            ],
        }
        if annotations:
            manifest["annotations"] = annotations
        digest, size = self._json_blob(manifest)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": MEDIA_MANIFEST, "digest": digest, "size": size, "annotations": {REF_NAME: TAG}}
            ],
        }
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (self.root / "index.json").write_text(json.dumps(index, sort_keys=True))
        return digest


def _with_parents(entries: list[Entry]) -> list[Entry]:
    """Adds a 0755 directory entry for every missing parent and sorts, so tars are complete and stable."""
    have = {e.path.rstrip("/") for e in entries}
    extra: list[Entry] = []
    for e in entries:
        parts = e.path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in have:
                have.add(parent)
                extra.append(Entry(parent, 0o755, kind="dir"))
    return sorted(entries + extra, key=lambda e: e.path)


def manifest_digest(layout: Path) -> str:
    """The digest of the one image a cached layout holds."""
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def image_config(layout: Path) -> dict[str, object]:
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest(layout).split(":", 1)[1]).read_text())
    return dict(json.loads((blobs / manifest["config"]["digest"].split(":", 1)[1]).read_text()))


def compressed_size(layout: Path) -> int:
    """Bytes a registry stores for the image: config plus layers (what a node pulls)."""
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest(layout).split(":", 1)[1]).read_text())
    return int(manifest["config"]["size"]) + sum(int(la["size"]) for la in manifest["layers"])


def file_names(layout: Path) -> set[str]:
    """Every path any layer of the layout's image holds (relative, no leading `./`)."""
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest(layout).split(":", 1)[1]).read_text())
    names: set[str] = set()
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":", 1)[1]) as tar:
            names.update(n.removeprefix("./") for n in tar.getnames())
    return names
