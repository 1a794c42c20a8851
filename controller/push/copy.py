"""Registry-to-registry copy: manifests byte-for-byte (digests preserved), blobs mounted or streamed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .client import INDEX_TYPES, RegistryClient, gather_bounded
from .errors import RegistryError
from .progress import Progress, log_event
from .reference import Reference
from .result import PushResult


@dataclass
class Stats:
    uploaded: int = 0
    skipped: int = 0
    mounted: int = 0
    size: int = 0
    layers: int = 0
    seen: set[str] = field(default_factory=set)


async def transfer_blob(
    client: RegistryClient,
    src: Reference,
    dst: Reference,
    digest: str,
    size: int,
    stats: Stats,
    progress: Progress,
    chunk_size: int = 0,
) -> None:
    """Make `digest` exist in dst's repo: skip if present, mount within one registry, else stream it."""
    if await client.blob_exists(dst.registry, dst.repository, digest):
        stats.skipped += size
        progress.add(size)
        return
    if src.registry == dst.registry and await client.mount_blob(
        dst.registry, dst.repository, digest, src.repository
    ):
        stats.mounted += size
        progress.add(size)
        return
    source = client.blob_source(src.registry, src.repository, digest)
    await client.upload_blob(
        dst.registry, dst.repository, digest, size, source, chunk_size=chunk_size, progress=progress
    )
    stats.uploaded += size


async def copy_image_manifest(
    client: RegistryClient,
    src: Reference,
    dst: Reference,
    manifest: bytes,
    stats: Stats,
    progress: Progress,
    concurrency: int,
    chunk_size: int,
) -> None:
    """Copy config + layers of one image manifest (not the manifest itself)."""
    doc = json.loads(manifest)
    if doc.get("schemaVersion") != 2 or "config" not in doc:
        raise RegistryError(f"{src}: only schema 2 / OCI image manifests can be copied")
    blobs = [doc["config"], *doc.get("layers", [])]
    todo = []
    for desc in blobs:
        digest, size = desc["digest"], int(desc["size"])
        if desc.get("urls"):
            continue  # foreign layer: lives outside the registry, nothing to copy
        if digest in stats.seen:
            continue
        stats.seen.add(digest)
        stats.size += size
        progress.add_total(size)
        todo.append((digest, size))
    stats.layers += len(doc.get("layers", []))

    def job(d: str, s: int):
        return lambda: transfer_blob(client, src, dst, d, s, stats, progress, chunk_size)

    await gather_bounded(concurrency, [job(d, s) for d, s in todo])


async def copy_image(
    client: RegistryClient,
    src: Reference,
    dst: Reference,
    *,
    concurrency: int = 4,
    chunk_size: int = 0,
    progress: Progress | None = None,
    image_text: str | None = None,
) -> PushResult:
    started = time.monotonic()
    progress = progress or Progress()
    stats = Stats()
    await client.ping(src.registry)
    await client.ping(dst.registry)
    top, media_type, digest = await client.get_manifest(src.registry, src.repository, src.reference)
    if media_type in INDEX_TYPES:
        index = json.loads(top)
        children = index.get("manifests", [])
        log_event("index", digest=digest, manifests=len(children))
        for child in children:
            cbytes, ctype, cdigest = await client.get_manifest(src.registry, src.repository, child["digest"])
            if ctype in INDEX_TYPES:
                raise RegistryError(f"{src}: nested image indexes are not supported")
            await copy_image_manifest(client, src, dst, cbytes, stats, progress, concurrency, chunk_size)
            await client.put_manifest(dst.registry, dst.repository, cdigest, cbytes, ctype)
    else:
        await copy_image_manifest(client, src, dst, top, stats, progress, concurrency, chunk_size)
    dst_ref = dst.tag or dst.digest or src.tag or digest
    if dst.digest and dst.digest != digest:
        raise RegistryError(f"destination pins {dst.digest} but the source is {digest}")
    await client.put_manifest(dst.registry, dst.repository, dst_ref, top, media_type)
    progress.emit()
    return PushResult(
        image=image_text or str(dst),
        digest=digest,
        url=f"{dst.name}@{digest}",
        size=stats.size,
        layers=stats.layers,
        bytes_uploaded=stats.uploaded,
        bytes_skipped=stats.skipped,
        bytes_mounted=stats.mounted,
        seconds=round(time.monotonic() - started, 3),
    )
