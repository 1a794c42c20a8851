"""Optional upload of a signature to a Rekor transparency log (`--rekor-url`).

UNTESTED HERE: no transparency log is reachable from this project's machines, so the tests verify with
`cosign verify --insecure-ignore-tlog`. This follows Rekor's v1 API as cosign uses it: a `hashedrekord`
entry (sha256 of the payload, the signature, the public key), and the log's answer stored in the
signature layer's `dev.sigstore.cosign/bundle` annotation so `cosign verify` can check it offline.
"""

from __future__ import annotations

import base64
import hashlib
import json

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec

from .signkey import SigningError, public_pem

BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"


async def upload_hashedrekord(
    rekor_url: str, key: ec.EllipticCurvePrivateKey, payload: bytes, signature: str
) -> dict[str, str]:
    entry = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "signature": {
                "content": signature,
                "publicKey": {"content": base64.b64encode(public_pem(key)).decode()},
            },
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        },
    }
    url = rekor_url.rstrip("/") + "/api/v1/log/entries"
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.post(url, json=entry) as resp:
            body = await resp.read()
            if resp.status not in (200, 201):
                raise SigningError(f"Rekor {rekor_url} refused the entry: {resp.status} {body[:300]!r}")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise SigningError(f"Rekor {rekor_url} unreachable: {exc}") from exc
    try:
        (logged,) = json.loads(body).values()
        bundle = {
            "SignedEntryTimestamp": logged["verification"]["signedEntryTimestamp"],
            "Payload": {
                "body": logged["body"],
                "integratedTime": logged["integratedTime"],
                "logIndex": logged["logIndex"],
                "logID": logged["logID"],
            },
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SigningError(f"Rekor {rekor_url} answered with an unexpected entry: {exc}") from exc
    return {BUNDLE_ANNOTATION: json.dumps(bundle, separators=(",", ":"))}
