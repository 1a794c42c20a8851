"""What cosign signs and reads (pure): the simple-signing payload, DSSE envelopes, SLSA v1 provenance.

Formats, as `cosign sign`/`cosign attest` write them and `cosign verify`/`verify-attestation` read them:
- a signature is ECDSA P-256 over SHA-256 of the payload, ASN.1 DER, base64 in the layer annotation
  `dev.cosignproject.cosign/signature`;
- the simple-signing payload names the repository and the manifest digest it vouches for;
- an attestation is a DSSE envelope (payloadType `application/vnd.in-toto+json`) whose signature covers
  the DSSE pre-authentication encoding, holding an in-toto v1 statement.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://modelpush.dev/ModelImagePush/v1"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def simple_signing_payload(repository: str, digest: str) -> bytes:
    """`repository` is `host/repo` without tag, as cosign writes `docker-reference`."""
    return compact(
        {
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """Base64 of the DER ECDSA-SHA256 signature (what the annotation and DSSE `sig` hold)."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes the envelope's signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_envelope(key: ec.EllipticCurvePrivateKey, statement: dict[str, Any]) -> bytes:
    payload = compact(statement)
    return compact(
        {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": sign(key, pae(IN_TOTO, payload))}],
        }
    )


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def provenance_statement(
    repository: str,
    subjects: list[str],
    context: dict[str, Any],
    dependencies: list[dict[str, Any]],
    finished_on: str,
) -> dict[str, Any]:
    """An in-toto v1 statement with a SLSA v1 provenance predicate.

    `context` comes from the controller (`--provenance-context`): `params` (the CustomRun's), `builder`
    (`id`, `version`), `invocation` (namespace, CustomRun name/uid, Tekton labels), `startedOn`.
    `dependencies` are resource descriptors of what went in: each model file with its sha256 and size,
    or the source image by digest.
    """
    builder = context.get("builder") or {}
    invocation = context.get("invocation") or {}
    metadata: dict[str, Any] = {"finishedOn": finished_on}
    if context.get("startedOn"):
        metadata["startedOn"] = context["startedOn"]
    if invocation.get("uid"):
        metadata["invocationId"] = (
            f"k8s://{invocation.get('namespace', '')}/customruns/{invocation.get('name', '')}/"
            f"{invocation['uid']}"
        )
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": repository, "digest": {"sha256": _hex(d)}} for d in dict.fromkeys(subjects)],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": context.get("params") or {},
                # SLSA v1's BuildMetadata has no place for who asked; the Tekton run that did is here.
                "internalParameters": {"invocation": invocation} if invocation else {},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": str(builder.get("id") or "model-image-push"),
                    **({"version": builder["version"]} if builder.get("version") else {}),
                },
                "metadata": metadata,
            },
        },
    }
