"""Tekton bundles (what `tkn bundle push` writes): an OCI image with one layer per Tekton object, each a
tar holding that object's YAML and annotated with its apiVersion, kind (lowercase, singular) and name,
which the bundles resolver matches. Pushed to a real registry through the distribution API (plain HTTP)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from typing import Any

import aiohttp
import yaml

Obj = dict[str, Any]
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _tar_gz(name: str, data: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _descriptor(media_type: str, blob: bytes, **annotations: str) -> Obj:
    desc: Obj = {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}
    if annotations:
        desc["annotations"] = annotations
    return desc


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def bundle(objects: list[Obj]) -> tuple[bytes, list[bytes]]:
    """The manifest and its blobs (config first) for `objects`."""
    config = b"{}"
    layers, descs = [], []
    for obj in objects:
        kind, name = obj["kind"].lower(), obj["metadata"]["name"]
        layer = _tar_gz(name, yaml.safe_dump(obj).encode())
        layers.append(layer)
        annotations = {
            "dev.tekton.image.apiVersion": obj["apiVersion"].split("/")[1],
            "dev.tekton.image.kind": kind,
            "dev.tekton.image.name": name,
        }
        descs.append(_descriptor(LAYER, layer, **annotations))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": _descriptor(CONFIG, config),
        "layers": descs,
    }
    return json.dumps(manifest).encode(), [config, *layers]


async def push_bundle(registry_host: str, repo: str, tag: str, objects: list[Obj]) -> str:
    """Pushes the bundle of `objects` as repo:tag; returns its manifest digest."""
    manifest, blobs = bundle(objects)
    base = f"http://{registry_host}/v2/{repo}"
    async with aiohttp.ClientSession() as http:
        for blob in blobs:
            async with http.post(f"{base}/blobs/uploads/") as resp:
                resp.raise_for_status()
                location = resp.headers["Location"]
            if location.startswith("/"):
                location = f"http://{registry_host}{location}"
            sep = "&" if "?" in location else "?"
            headers = {"Content-Type": "application/octet-stream"}
            async with http.put(f"{location}{sep}digest={_digest(blob)}", data=blob, headers=headers) as resp:
                resp.raise_for_status()
        headers = {"Content-Type": MANIFEST}
        async with http.put(f"{base}/manifests/{tag}", data=manifest, headers=headers) as resp:
            resp.raise_for_status()
            return resp.headers["Docker-Content-Digest"]
