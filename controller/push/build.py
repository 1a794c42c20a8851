"""Build mode: a model directory becomes an OCI image (modelcar), a ModelPack artifact, or both, streamed
straight to the registry.

Each file/symlink becomes one uncompressed tar layer under /models/. Layers are hashed first (so a
re-push or a resumed push skips what the registry already has), then streamed from the file; nothing is
staged on disk. Layers run in parallel up to `concurrency`. A modelcar gets the busybox base layer
(baselayer.py) unless the caller gives a base image or none. `both` pushes the model layers once and
two manifests that share them, under one OCI index.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Literal

from .baselayer import PATH_ENV, plan_base_layer
from .client import INDEX_TYPES, OCI_INDEX, OCI_MANIFEST, RegistryClient, gather_bounded, sha256_digest
from .copy import Stats, transfer_blob
from .errors import InvalidInput, RegistryError
from .metadata import ImageMeta, image_annotations, iso_time
from .modelpack import (
    ARTIFACT_TYPE,
    hf_fields,
    make_index,
    make_model_config,
    make_model_manifest,
    pack_layer_descriptors,
    weight_format,
)
from .progress import Progress, log_event
from .reference import Reference
from .result import PushResult, dumps_canonical
from .scan import scan_context
from .tarlayer import (
    DEFAULT_MAX_LAYERS,
    Entry,
    LayerPlan,
    group_entries,
    layer_digest,
    layer_source,
    plan_groups,
)

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


Format = Literal["modelcar", "modelpack", "both"]


def make_config(
    diff_ids: list[str],
    titles: list[str],
    epoch: int,
    platform: tuple[str, str],
    base: dict | None,
    labels: dict[str, str] | None = None,
    env: list[str] | None = None,
) -> dict:
    """OCI image config (pure): the base's config extended with our layers, or a minimal one.
    `titles` name each layer in the history ("/models/<title>"; a title starting with "/" verbatim);
    `labels` are added to config.Labels and `env` sets config.Env when the base has none."""
    created = iso_time(epoch)
    history = [
        {"created": created, "created_by": f"model-image-push: {t if t.startswith('/') else '/models/' + t}"}
        for t in titles
    ]
    if base is not None:
        cfg = json.loads(json.dumps(base))
        rootfs = cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *diff_ids]
        cfg["history"] = [*cfg.get("history", []), *history]
        cfg["created"] = created
    else:
        cfg = {
            "architecture": platform[1],
            "os": platform[0],
            "created": created,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
    if labels:
        inner = cfg.setdefault("config", {})
        inner["Labels"] = {**(inner.get("Labels") or {}), **labels}
    if env and not cfg.get("config", {}).get("Env"):
        cfg.setdefault("config", {})["Env"] = env
    return cfg


def make_manifest(config: bytes, layers: list[dict], annotations: dict[str, str] | None = None) -> bytes:
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": layers,
    }
    if annotations:
        doc["annotations"] = annotations
    return dumps_canonical(doc)


def read_hf_config(context: Path) -> dict | None:
    """The model's Hugging Face config.json, if there is a small, valid one at the top."""
    path = context / "config.json"
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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


async def _put_blob_bytes(client: RegistryClient, dst: Reference, data: bytes, stats: Stats) -> str:
    """Upload a small in-memory blob (a config) unless the registry has it; returns its digest."""
    digest = sha256_digest(data)
    if not await client.blob_exists(dst.registry, dst.repository, digest):

        async def source(offset: int):
            yield data[offset:]

        await client.upload_blob(dst.registry, dst.repository, digest, len(data), source)
        stats.uploaded += len(data)
    stats.size += len(data)
    return digest


def _layer_descriptors(plans: list[LayerPlan], digests: list[str]) -> list[dict]:
    return [
        {"mediaType": OCI_LAYER, "digest": d, "size": p.size, "annotations": {TITLE: p.title}}
        for d, p in zip(digests, plans, strict=True)
    ]


async def _put_manifest(client: RegistryClient, dst: Reference, ref: str | None, manifest: bytes) -> dict:
    """PUT an OCI manifest under `ref` (None: its own digest); returns its descriptor."""
    digest = sha256_digest(manifest)
    got = await client.put_manifest(dst.registry, dst.repository, ref or digest, manifest, OCI_MANIFEST)
    if got != digest:
        raise RegistryError("manifest digest mismatch")
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}


async def _push_image(
    client: RegistryClient,
    dst: Reference,
    ref: str | None,
    *,
    layers: list[dict],
    config: dict,
    annotations: dict[str, str],
    stats: Stats,
) -> dict:
    """The modelcar image's config and manifest (its layers are already there); returns its descriptor."""
    body = dumps_canonical(config)
    await _put_blob_bytes(client, dst, body, stats)
    return await _put_manifest(client, dst, ref, make_manifest(body, layers, annotations))


async def build_image(
    client: RegistryClient,
    context: Path,
    dst: Reference,
    *,
    base: Reference | None = None,
    base_layer: Path | None = None,
    fmt: Format = "modelcar",
    meta: ImageMeta | None = None,
    concurrency: int = 4,
    chunk_size: int = 0,
    platform: tuple[str, str] = ("linux", "amd64"),
    progress: Progress | None = None,
    image_text: str | None = None,
    max_layers: int = DEFAULT_MAX_LAYERS,
) -> PushResult:
    """`base_layer` is a static busybox to add as the bottom layer (modelcar only; ignored with `base`)."""
    started = time.monotonic()
    if dst.digest:
        raise InvalidInput(f"--image {dst}: give a tag, not a digest, for a build")
    progress = progress or Progress()
    meta = meta or ImageMeta()
    entries = scan_context(context)
    epoch = source_date_epoch()
    groups: list[list[Entry]] = group_entries(entries, max_layers)
    plans: list[LayerPlan] = plan_groups(groups, epoch)
    want_image = fmt in ("modelcar", "both")
    bottom: LayerPlan | None = None
    if want_image and base is None and base_layer is not None:
        bottom = plan_base_layer(base_layer, platform[1])
    await client.ping(dst.registry)
    stats = Stats()
    base_layers: list[dict] = []
    base_config: dict | None = None
    if want_image and base is not None:
        _, base_layers, base_config = await _resolve_base(client, base, platform)
        for layer in base_layers:
            progress.add_total(int(layer["size"]))
    pushed = [*plans, *([bottom] if bottom else [])]
    total = sum(p.size for p in pushed)
    progress.add_total(total)
    stats.size = total + sum(int(b["size"]) for b in base_layers)

    digests: list[str] = [""] * len(pushed)
    # Hashing (one file at a time, in a worker thread) runs ahead of the uploads, so the next layer's
    # digest is ready when an upload slot frees up; hashing and uploading overlap instead of alternating.
    hash_slot = asyncio.Semaphore(1)
    upload_slots = asyncio.Semaphore(max(1, concurrency))

    async def push_layer(i: int) -> None:
        plan = pushed[i]
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
    order = sorted(range(len(pushed)), key=lambda i: -pushed[i].size)
    jobs = [*(push_base_layer(b) for b in base_layers), *(push_layer(i) for i in order)]
    # Unbounded gather is fine: the semaphores bound the work; tasks only wait on them.
    await gather_bounded(len(jobs) or 1, [(lambda j=j: j) for j in jobs])

    model_digests = digests[: len(plans)]
    annotations = image_annotations(meta, epoch)
    tag = dst.tag or "latest"
    image_desc = pack_desc = None
    index_digest = None
    if want_image:
        own = [*([bottom] if bottom else []), *plans]
        image_desc = await _push_image(
            client,
            dst,
            tag if fmt == "modelcar" else None,
            layers=[*base_layers, *_layer_descriptors(own, [*digests[len(plans) :], *model_digests])],
            config=make_config(
                [*digests[len(plans) :], *model_digests],
                [p.title if p is not bottom else "/" + p.title for p in own],  # "/": not under /models
                epoch,
                platform,
                base_config,
                labels=annotations,
                env=[PATH_ENV] if bottom else None,
            ),
            annotations=annotations,
            stats=stats,
        )
        image_desc["platform"] = {"os": platform[0], "architecture": platform[1]}
    if fmt in ("modelpack", "both"):
        before = stats.uploaded
        hf = hf_fields(read_hf_config(context))
        fmt_name = weight_format([e.relpath for e in entries])
        pack_config = dumps_canonical(make_model_config(model_digests, meta, epoch, hf, fmt_name))
        config_digest = await _put_blob_bytes(client, dst, pack_config, stats)
        pack_layers = pack_layer_descriptors(groups, [p.size for p in plans], model_digests, epoch)
        pack_manifest = make_model_manifest(pack_config, config_digest, pack_layers, annotations)
        # With both, the tag names the index; modctl v0.2.2 pulls by tag only and reads no index, so the
        # ModelPack manifest gets its own tag too.
        ref = tag if fmt == "modelpack" else f"{tag[:118]}-modelpack"
        pack_desc = await _put_manifest(client, dst, ref, pack_manifest)
        pack_desc["artifactType"] = ARTIFACT_TYPE
        # Every layer blob is the modelcar's: a second format costs only its config.
        log_event("pushed modelpack", digest=pack_desc["digest"], bytes_uploaded=stats.uploaded - before)
    if image_desc is not None and pack_desc is not None:
        index = make_index(image_desc, pack_desc, annotations)
        index_digest = await client.put_manifest(dst.registry, dst.repository, tag, index, OCI_INDEX)
    image_digest = image_desc["digest"] if image_desc else None
    modelpack_digest = pack_desc["digest"] if pack_desc else None
    layer_count = len(base_layers) + len(plans) + (1 if bottom else 0) if want_image else len(plans)
    digest = image_digest or modelpack_digest
    assert digest is not None
    progress.emit()
    log_event("pushed", digest=digest, layers=layer_count, index=index_digest)
    return PushResult(
        image=image_text or str(dst),
        digest=digest,
        url=f"{dst.name}@{digest}",
        size=stats.size,
        layers=layer_count,
        bytes_uploaded=stats.uploaded,
        bytes_skipped=stats.skipped,
        bytes_mounted=stats.mounted,
        seconds=round(time.monotonic() - started, 3),
        index_digest=index_digest,
        modelpack_digest=modelpack_digest if fmt == "both" else None,
    )
