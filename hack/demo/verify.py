"""Pull an image with skopeo into an OCI layout and hash the model files inside its layers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "models/"


@dataclass
class Pulled:
    manifest_digest: str
    files: dict[str, str] = field(default_factory=dict)  # relpath under /models -> sha256 hex
    layers: int = 0


def skopeo_pull(image: str, dest: Path, timeout: float = 600.0) -> None:
    """`skopeo copy docker://image oci:dest:demo` (plain-HTTP registry on loopback)."""
    # --preserve-digests: skopeo must fail rather than rewrite the manifest, so its digest is comparable.
    cmd = ["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false"]
    cmd += [f"docker://{image}", f"oci:{dest}:demo"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"skopeo copy failed ({out.returncode}): {out.stderr.strip()[-1000:]}")


def _blob(layout: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return layout / "blobs" / algo / hexd


def read_layout(layout: Path) -> Pulled:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(_blob(layout, digest).read_text())
    pulled = Pulled(manifest_digest=digest, layers=len(manifest["layers"]))
    for layer in manifest["layers"]:
        # "r:*" also opens gzip layers (the native builder writes plain tar, buildah may compress)
        with tarfile.open(_blob(layout, layer["digest"]), "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./").removeprefix("/")
                if not member.isfile() or not name.startswith(PREFIX):
                    continue
                f = tar.extractfile(member)
                assert f is not None
                h = hashlib.sha256()
                while block := f.read(1 << 20):
                    h.update(block)
                pulled.files[name[len(PREFIX) :]] = h.hexdigest()
    return pulled


def compare(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    """Human-readable differences; empty when every file matches."""
    problems = [f"missing in image: {p}" for p in sorted(set(expected) - set(got))]
    problems += [f"unexpected in image: {p}" for p in sorted(set(got) - set(expected))]
    problems += [f"hash differs: {p}" for p in sorted(set(expected) & set(got)) if expected[p] != got[p]]
    return problems
