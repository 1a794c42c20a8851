"""Puts a cached OCI layout into a registry over plain HTTP with skopeo, unless it is there already.

The registry is the local one (`host:port`, no TLS, no auth): the warm path is one HEAD request per
image, so `ensure_images` costs milliseconds once everything is built and pushed.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hack.images.oci import MEDIA_MANIFEST, TAG, manifest_digest
from hack.images.proc import log_path, run

HEAD_TIMEOUT = 5.0


def registry_digest(registry: str, repository: str, tag: str) -> str | None:
    """The manifest digest the registry holds for repository:tag, or None when it has none."""
    req = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MEDIA_MANIFEST},
    )
    try:
        with urllib.request.urlopen(req, timeout=HEAD_TIMEOUT) as resp:
            return resp.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def publish(layout: Path, registry: str, repository: str, tag: str) -> str:
    """Makes `registry/repository:tag` hold the layout's image; returns its manifest digest."""
    digest = manifest_digest(layout)
    if registry_digest(registry, repository, tag) == digest:
        return digest
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:{TAG}",
            f"docker://{registry}/{repository}:{tag}",
        ],
        log_path("publish"),
    )
    return digest


def inspect(ref: str) -> dict[str, Any]:
    """`skopeo inspect` of an image in a plain-HTTP registry (Digest, Layers, Labels, ...)."""
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out))
