"""Where signatures and attestations go in the registry, in cosign's layouts.

- `tag` (what `cosign sign`/`attest` do by default): an OCI manifest at the tag `sha256-<hex>.sig` (or
  `.att`) in the image's repository; each signature is one layer, and a new one is appended to what the
  tag already holds, so signatures by other keys survive.
- `referrers` (OCI 1.1, what `cosign ... --registry-referrers-mode=oci-1-1` writes and
  `--experimental-oci11` reads): a manifest with `subject` pointing at the image, pushed by digest;
  `artifactType` `application/vnd.dev.cosign.artifact.sig.v1+json` for signatures,
  `application/vnd.in-toto+json` for attestations (which also keep the tag: cosign 2.x verifies
  key-signed attestations from the tag only). Only where the registry answers the referrers API;
  elsewhere we fall back to the tag.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from .client import OCI_MANIFEST, RegistryClient, sha256_digest
from .errors import NotFound
from .progress import log_event
from .reference import Reference
from .result import dumps_canonical

Storage = Literal["tag", "referrers", "both"]
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
IN_TOTO = "application/vnd.in-toto+json"


def artifact_type(kind: str) -> str:
    return f"application/vnd.dev.cosign.artifact.{kind}.v1+json"


def attachment_tag(digest: str, kind: str) -> str:
    alg, hexpart = digest.split(":", 1)
    return f"{alg}-{hexpart}.{kind}"


def _descriptor(media_type: str, content: bytes, annotations: dict[str, str] | None = None) -> dict:
    d: dict[str, Any] = {"mediaType": media_type, "digest": sha256_digest(content), "size": len(content)}
    if annotations:
        d["annotations"] = annotations
    return d


def _config(layers: list[dict]) -> bytes:
    # cosign's signature images carry an empty image config listing the layers; verifiers ignore it.
    return dumps_canonical(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    )


async def _put_blob(client: RegistryClient, dst: Reference, content: bytes) -> None:
    digest = sha256_digest(content)
    if await client.blob_exists(dst.registry, dst.repository, digest):
        return

    async def source(offset: int) -> AsyncIterator[bytes]:
        yield content[offset:]

    await client.upload_blob(dst.registry, dst.repository, digest, len(content), source)


async def _existing_layers(client: RegistryClient, dst: Reference, tag: str) -> list[dict]:
    try:
        raw, media_type, _ = await client.get_manifest(dst.registry, dst.repository, tag)
    except NotFound:
        return []
    if media_type != OCI_MANIFEST and media_type != "application/vnd.docker.distribution.manifest.v2+json":
        return []
    return list(json.loads(raw).get("layers") or [])


async def supports_referrers(client: RegistryClient, dst: Reference, digest: str) -> bool:
    """True when GET /v2/<repo>/referrers/<digest> answers with an image index (OCI distribution 1.1)."""
    probe = getattr(client, "referrers", None)
    if probe is not None:  # the split client (branch `registries`) has the call; use it once merged
        return await probe(dst.registry, dst.repository, digest) is not None
    resp, body = await client.request(
        "GET",
        dst.registry,
        f"/v2/{dst.repository}/referrers/{digest}",
        scope=f"repository:{dst.repository}:pull",
        headers={"Accept": OCI_INDEX},
    )
    if resp.status != 200:
        return False
    try:
        return json.loads(body).get("mediaType", OCI_INDEX) == OCI_INDEX
    except (json.JSONDecodeError, AttributeError):
        return False


async def _attach_tag(client: RegistryClient, dst: Reference, digest: str, kind: str, layer: dict) -> str:
    tag = attachment_tag(digest, kind)
    layers = await _existing_layers(client, dst, tag)
    if not any(
        x.get("digest") == layer["digest"] and x.get("annotations") == layer.get("annotations")
        for x in layers
    ):
        layers.append(layer)
    config = _config(layers)
    await _put_blob(client, dst, config)
    manifest = dumps_canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": layers,
        }
    )
    got = await client.put_manifest(dst.registry, dst.repository, tag, manifest, OCI_MANIFEST)
    return f"{dst.name}@{got}"


async def _attach_referrer(
    client: RegistryClient, dst: Reference, digest: str, kind: str, layer: dict
) -> str:
    subject_raw, subject_type, _ = await client.get_manifest(dst.registry, dst.repository, digest)
    if kind == "att":
        # cosign's attestation referrers: artifactType in-toto, the OCI empty config
        kind_type, config, config_type = IN_TOTO, b"{}", OCI_EMPTY
    else:
        kind_type, config = artifact_type(kind), _config([layer])
        config_type = kind_type
    await _put_blob(client, dst, config)
    manifest = dumps_canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": kind_type,
            "config": _descriptor(config_type, config),
            "layers": [layer],
            "subject": _descriptor(subject_type, subject_raw),
        }
    )
    mdigest = sha256_digest(manifest)
    await client.put_manifest(dst.registry, dst.repository, mdigest, manifest, OCI_MANIFEST)
    return f"{dst.name}@{mdigest}"


async def attach(
    client: RegistryClient,
    dst: Reference,
    digest: str,
    kind: Literal["sig", "att"],
    content: bytes,
    media_type: str,
    annotations: dict[str, str],
    storage: Storage,
) -> str:
    """Store one signature/attestation layer for the manifest `digest`; returns `repo@digest` of the
    manifest that now holds it (the referrer when one was written, else the tag's)."""
    await _put_blob(client, dst, content)
    layer = _descriptor(media_type, content, annotations)
    use_referrers = storage != "tag" and await supports_referrers(client, dst, digest)
    if storage == "referrers" and not use_referrers:
        log_event("referrers-unsupported", registry=dst.registry, fallback="tag")
    ref = ""
    # cosign 2.x reads key-signed attestations only from the `.att` tag (its referrers lookup is for
    # signatures and the new bundle format), so an attestation always goes to the tag as well.
    if storage != "referrers" or not use_referrers or kind == "att":
        ref = await _attach_tag(client, dst, digest, kind, layer)
    if use_referrers:
        ref = await _attach_referrer(client, dst, digest, kind, layer)
    return ref
