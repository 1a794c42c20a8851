"""Sign a pushed image and attach SLSA provenance, as `cosign sign --key` and `cosign attest` would.

Runs after a successful push. A signing failure never undoes the push: the result keeps the digest
and carries `signing_error`, and the controller decides what the run's outcome is (reason
`SigningFailed`). Messages name the Secret and the key, never key material.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .client import RegistryClient
from .errors import PushError
from .progress import log_event
from .reference import Reference
from .result import PushResult
from .scan import scan_context
from .signformat import (
    DSSE_ENVELOPE,
    PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    SLSA_PROVENANCE_V1,
    dsse_envelope,
    provenance_statement,
    sign,
    simple_signing_payload,
)
from .signkey import SigningError, decrypt_cosign_key
from .signstore import Storage, attach


@dataclass(frozen=True)
class SignOptions:
    key_file: Path
    password_file: Path | None
    key_source: str  # "namespace/secret" for messages; a name, never the key
    storage: Storage = "tag"
    context: dict[str, Any] = field(default_factory=dict)  # --provenance-context (see signformat)
    rekor_url: str | None = None


@dataclass(frozen=True)
class Inputs:
    """What went into the image: a model directory (build, buildah) or a source image (copy, skopeo)."""

    context_dir: Path | None = None
    source_image: str | None = None
    source_digest: str | None = None  # known when the copy preserved digests


def _read(path: Path, what: str, opts: SignOptions) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SigningError(
            f"{what} {path.name} not found in Secret {opts.key_source}; create it as Tekton Chains "
            "does (cosign generate-key-pair k8s://NAMESPACE/NAME) or fix the signing Secret settings"
        ) from exc
    except OSError as exc:
        raise SigningError(
            f"cannot read {what} {path.name} from Secret {opts.key_source}: {exc.strerror}"
        ) from exc


def load_key(opts: SignOptions) -> ec.EllipticCurvePrivateKey:
    pem = _read(opts.key_file, "signing key", opts)
    password = _read(opts.password_file, "password", opts) if opts.password_file else b""
    try:
        try:
            return decrypt_cosign_key(pem, password)
        except SigningError:
            # Chains and cosign use the password byte for byte; a file written by an editor or
            # `echo` ends in a newline the password never had, so that one is forgiven.
            if not password.endswith(b"\n"):
                raise
            return decrypt_cosign_key(pem, password[:-1])
    except SigningError as exc:
        raise SigningError(f"key {opts.key_file.name} in Secret {opts.key_source}: {exc}") from exc


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while buf := fh.read(4 << 20):
            h.update(buf)
    return h.hexdigest()


def file_dependencies(context_dir: Path, uri_base: str) -> list[dict[str, Any]]:
    """One SLSA resource descriptor per model file: path, sha256 and size.

    The push hashes tar layers, not files, so this is a second read of the model (sequential, in a
    worker thread); it runs only when signing is on.
    """
    deps = []
    for e in scan_context(context_dir):
        if e.kind != "file" or e.source is None:
            continue
        deps.append(
            {
                "name": f"models/{e.relpath}",
                "uri": f"{uri_base.rstrip('/')}/{e.relpath}",
                "digest": {"sha256": _file_sha256(e.source)},
                "annotations": {"size": e.size},
            }
        )
    return deps


async def _dependencies(inputs: Inputs, opts: SignOptions) -> list[dict[str, Any]]:
    if inputs.context_dir is not None:
        source = str((opts.context.get("params") or {}).get("source") or f"dir://{inputs.context_dir}")
        return await asyncio.to_thread(file_dependencies, inputs.context_dir, source)
    if inputs.source_image:
        dep: dict[str, Any] = {"uri": f"docker://{inputs.source_image.removeprefix('docker://')}"}
        if inputs.source_digest:
            dep["digest"] = {"sha256": inputs.source_digest.split(":", 1)[1]}
        return [dep]
    return []


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def sign_and_attest(
    client: RegistryClient, dst: Reference, result: PushResult, inputs: Inputs, opts: SignOptions
) -> PushResult:
    """Sign `result.digest` and attach its provenance; never raises for signing problems."""
    # `format: both` pushes an index over the image: sign both, so a policy that resolves the tag (the
    # index) and one that pins IMAGE_DIGEST (the image) both find a signature; one statement covers both.
    digests = [result.digest, *([result.index_digest] if result.index_digest else [])]
    try:
        key = load_key(opts)
        sig_ref = att_ref = ""
        for digest in digests:
            payload = simple_signing_payload(dst.name, digest)
            signature = sign(key, payload)
            sig_annotations = {SIGNATURE_ANNOTATION: signature}
            if opts.rekor_url:
                from .signrekor import upload_hashedrekord

                bundle = await upload_hashedrekord(opts.rekor_url, key, payload, signature)
                sig_annotations.update(bundle)
            ref = await attach(
                client, dst, digest, "sig", payload, SIMPLE_SIGNING, sig_annotations, opts.storage
            )
            sig_ref = sig_ref or ref
        statement = provenance_statement(
            dst.name, digests, opts.context, await _dependencies(inputs, opts), _now()
        )
        envelope = dsse_envelope(key, statement)
        att_annotations = {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1}
        for digest in digests:
            ref = await attach(
                client, dst, digest, "att", envelope, DSSE_ENVELOPE, att_annotations, opts.storage
            )
            att_ref = att_ref or ref
    except PushError as exc:
        message = str(exc) if isinstance(exc, SigningError) else f"writing the signature failed: {exc}"
        log_event("signing-failed", digest=result.digest, reason=message[:500])
        return result.model_copy(update={"signing_error": message})
    log_event("signed", digest=result.digest, signature=sig_ref, attestation=att_ref)
    return result.model_copy(update={"signature_ref": sig_ref, "attestation_ref": att_ref})


def parse_context(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SigningError(f"--provenance-context is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SigningError("--provenance-context must be a JSON object")
    return value
