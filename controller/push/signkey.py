"""cosign's encrypted private key (`cosign generate-key-pair`, Tekton Chains' `cosign.key`).

The PEM block (`ENCRYPTED SIGSTORE PRIVATE KEY`, or the older `ENCRYPTED COSIGN PRIVATE KEY`) holds
JSON written by go-securesystemslib's `encrypted` package:
`{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt": b64}, "cipher": {"name":
"nacl/secretbox", "nonce": b64}, "ciphertext": b64}`. The password and salt give a 32-byte key by
scrypt; the ciphertext opens with NaCl secretbox (XSalsa20-Poly1305) into a PKCS#8 DER private key.

`cryptography` does scrypt, PKCS#8 and ECDSA, but has no XSalsa20 (it has ChaCha20 and Poly1305 only),
so the secretbox step uses PyNaCl, the maintained binding of libsodium, rather than hand-written
cipher code.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import PushError

PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# go-securesystemslib writes N=32768 r=8 p=1; bound what we accept so a crafted key cannot make
# scrypt allocate gigabytes (memory is 128 * r * N bytes).
MAX_SCRYPT_MEMORY = 256 << 20


class SigningError(PushError):
    """The image was pushed but could not be signed or attested (key, password, or writing the
    signature). Raised only inside signing; the push result carries it as `signing_error`."""

    kind = "signing"
    exit_code = 5


def _pem_body(pem: bytes) -> bytes:
    text = pem.decode("ascii", errors="replace")
    for kind in PEM_TYPES:
        begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
        if begin in text and end in text:
            body = text.split(begin, 1)[1].split(end, 1)[0]
            try:
                return base64.b64decode("".join(body.split()), validate=True)
            except binascii.Error as exc:
                raise SigningError("the PEM body is not base64") from exc
    raise SigningError(f"not a cosign private key: no PEM block of type {' or '.join(PEM_TYPES)}")


def _b64(doc: dict[str, Any], *path: str) -> bytes:
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, str):
        raise SigningError(f"the encrypted key has no {'.'.join(path)}")
    try:
        return base64.b64decode(node, validate=True)
    except binascii.Error as exc:
        raise SigningError(f"the encrypted key's {'.'.join(path)} is not base64") from exc


def decrypt_cosign_key(pem: bytes, password: bytes) -> ec.EllipticCurvePrivateKey:
    """The ECDSA private key inside a cosign key file; SigningError names what is wrong, never the key."""
    try:
        doc = json.loads(_pem_body(pem))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SigningError("the encrypted key is not the JSON cosign writes") from exc
    if not isinstance(doc, dict):
        raise SigningError("the encrypted key is not the JSON cosign writes")
    kdf, cipher = doc.get("kdf") or {}, doc.get("cipher") or {}
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise SigningError(f"unsupported key encryption {kdf.get('name')!r}/{cipher.get('name')!r}")
    params = kdf.get("params") or {}
    try:
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SigningError("the encrypted key's scrypt parameters are missing") from exc
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * r * n > MAX_SCRYPT_MEMORY or p > 16:
        raise SigningError(f"the encrypted key's scrypt parameters N={n} r={r} p={p} are out of range")
    salt, nonce = _b64(doc, "kdf", "salt"), _b64(doc, "cipher", "nonce")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise SigningError("the encrypted key's nonce has the wrong length")
    box_key = Scrypt(salt=salt, length=nacl.secret.SecretBox.KEY_SIZE, n=n, r=r, p=p).derive(password)
    try:
        der = nacl.secret.SecretBox(box_key).decrypt(_b64(doc, "ciphertext"), nonce)
    except nacl.exceptions.CryptoError as exc:
        raise SigningError("wrong password (the key does not decrypt with cosign.password)") from exc
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError as exc:
        raise SigningError("the decrypted key is not a PKCS#8 private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError("only ECDSA P-256 keys are supported (what cosign generate-key-pair makes)")
    return key


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The public key as cosign.pub holds it (PKIX `PUBLIC KEY` PEM)."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
