"""Build mode: a model directory becomes an OCI image (modelcar) streamed straight to the registry.

Each file/symlink becomes one uncompressed tar layer under /models/. Layers are hashed first (so a
re-push or a resumed push skips what the registry already has), then streamed from the file; nothing is
staged on disk. Layers run in parallel up to `concurrency`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from .client import INDEX_TYPES, OCI_MANIFEST, RegistryClient, gather_bounded, sha256_digest
from .copy import Stats, transfer_blob
from .errors import InvalidInput, RegistryError
from .progress import Progress, log_event
from .reference import Reference
from .result import PushResult, dumps_canonical
from .scan import scan_context
from .tarlayer import DEFAULT_MAX_LAYERS, LayerPlan, layer_digest, layer_source, plan_layers

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
TITLE = "org.opencontainers.image.title"
_DOCKER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER,
}


def source_date_epoch(default: int = 0) -> int:
    """SOURCE_DATE_EPOCH (reproducible-builds.org) when set, else a fixed time."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"SOURCE_DATE_EPOCH={raw!r} is not an integer number of seconds") from exc
    if value < 0:
        raise InvalidInput("SOURCE_DATE_EPOCH must not be negative")
    return value


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_config(
    diff_ids: list[str], titles: list[str], epoch: int, platform: tuple[str, str], base: dict | None
) -> dict:
    """OCI image config (pure): the base's config extended with our layers, or a minimal one."""
    created = _iso(epoch)
    history = [{"created": created, "created_by": f"model-image-push: /models/{t}"} for t in titles]
    if base is not None:
        cfg = json.loads(json.dumps(base))
        rootfs = cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *diff_ids]
        cfg["history"] = [*cfg.get("history", []), *history]
        cfg["created"] = created
        return cfg
    return {
        "architecture": platform[1],
        "os": platform[0],
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def make_manifest(config: bytes, layers: list[dict]) -> bytes:
    return dumps_canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": layers,
        }
    )


async def _resolve_base(
    client: RegistryClient, base: Reference, platform: tuple[str, str]
) -> tuple[Reference, list[dict], dict]:
    """The base image's layer descriptors and config, picking our platform from an index."""
    raw, media_type, _ = await client.get_manifest(base.registry, base.repository, base.reference)
    if media_type in INDEX_TYPES:
        index = json.loads(raw)
        want_os, want_arch = platform
        match = [
            m
            for m in index.get("manifests", [])
            if m.get("platform", {}).get("os") == want_os
            and m.get("platform", {}).get("architecture") == want_arch
        ]
        if not match:
            raise InvalidInput(f"--base {base}: no {want_os}/{want_arch} image in its index")
        raw, media_type, _ = await client.get_manifest(base.registry, base.repository, match[0]["digest"])
    doc = json.loads(raw)
    config = json.loads(await client.get_blob_bytes(base.registry, base.repository, doc["config"]["digest"]))
    layers = []
    for desc in doc.get("layers", []):
        layers.append(
            {
                "mediaType": _DOCKER_TO_OCI.get(desc["mediaType"], desc["mediaType"]),
                "digest": desc["digest"],
                "size": desc["size"],
            }
        )
    return base, layers, config


async def build_image(
    client: RegistryClient,
    context: Path,
    dst: Reference,
    *,
    base: Reference | None = None,
    concurrency: int = 4,
    chunk_size: int = 0,
    platform: tuple[str, str] = ("linux", "amd64"),
    progress: Progress | None = None,
    image_text: str | None = None,
    max_layers: int = DEFAULT_MAX_LAYERS,
) -> PushResult:
    started = time.monotonic()
    progress = progress or Progress()
    entries = scan_context(context)
    epoch = source_date_epoch()
    plans: list[LayerPlan] = plan_layers(entries, epoch, max_layers)
    await client.ping(dst.registry)
    stats = Stats()
    base_layers: list[dict] = []
    base_config: dict | None = None
    if base is not None:
        _, base_layers, base_config = await _resolve_base(client, base, platform)
        for layer in base_layers:
            progress.add_total(int(layer["size"]))
    total = sum(p.size for p in plans)
    progress.add_total(total)
    stats.size = total + sum(int(b["size"]) for b in base_layers)

    digests: list[str] = [""] * len(plans)
    # Hashing (one file at a time, in a worker thread) runs ahead of the uploads, so the next layer's
    # digest is ready when an upload slot frees up; hashing and uploading overlap instead of alternating.
    hash_slot = asyncio.Semaphore(1)
    upload_slots = asyncio.Semaphore(max(1, concurrency))

    async def push_layer(i: int) -> None:
        plan = plans[i]
        async with hash_slot:
            digest = await asyncio.to_thread(layer_digest, plan)
        digests[i] = digest
        async with upload_slots:
            if await client.blob_exists(dst.registry, dst.repository, digest):
                stats.skipped += plan.size
                progress.add(plan.size)
                return
            await client.upload_blob(
                dst.registry,
                dst.repository,
                digest,
                plan.size,
                layer_source(plan),
                chunk_size=chunk_size,
                progress=progress,
                label=f"file /models/{plan.title}",  # registries issue: errors name the file
            )
            stats.uploaded += plan.size

    async def push_base_layer(layer: dict) -> None:
        assert base is not None
        async with upload_slots:
            await transfer_blob(
                client, base, dst, layer["digest"], int(layer["size"]), stats, progress, chunk_size
            )

    # Biggest layers first, so the slowest upload starts early and parallel streams stay busy.
    order = sorted(range(len(plans)), key=lambda i: -plans[i].size)
    jobs = [*(push_base_layer(b) for b in base_layers), *(push_layer(i) for i in order)]
    # Unbounded gather is fine: the semaphores bound the work; tasks only wait on them.
    await gather_bounded(len(jobs) or 1, [(lambda j=j: j) for j in jobs])

    config = dumps_canonical(make_config(digests, [p.title for p in plans], epoch, platform, base_config))
    config_digest = sha256_digest(config)
    if not await client.blob_exists(dst.registry, dst.repository, config_digest):

        async def config_source(offset: int):
            yield config[offset:]

        await client.upload_blob(dst.registry, dst.repository, config_digest, len(config), config_source)
    stats.size += len(config)
    layers = [
        *base_layers,
        *[
            {"mediaType": OCI_LAYER, "digest": d, "size": p.size, "annotations": {TITLE: p.title}}
            for d, p in zip(digests, plans, strict=True)
        ],
    ]
    manifest = make_manifest(config, layers)
    if dst.digest:
        raise InvalidInput(f"--image {dst}: give a tag, not a digest, for a build")
    digest = await client.put_manifest(
        dst.registry, dst.repository, dst.tag or "latest", manifest, OCI_MANIFEST
    )
    if digest != sha256_digest(manifest):
        raise RegistryError("manifest digest mismatch")
    progress.emit()
    log_event("pushed", digest=digest, layers=len(layers))
    return PushResult(
        image=image_text or str(dst),
        digest=digest,
        url=f"{dst.name}@{digest}",
        size=stats.size,
        layers=len(layers),
        bytes_uploaded=stats.uploaded,
        bytes_skipped=stats.skipped,
        bytes_mounted=stats.mounted,
        seconds=round(time.monotonic() - started, 3),
    )
