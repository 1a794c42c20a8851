"""Pure parts of signing: payload and envelope formats, provenance shape, key-file errors.

The real format check is tests/push/test_sign.py, where the real cosign makes the keys and verifies.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from controller.push.signformat import (
    IN_TOTO,
    SLSA_PROVENANCE_V1,
    dsse_envelope,
    pae,
    provenance_statement,
    sign,
    simple_signing_payload,
)
from controller.push.signkey import SigningError, decrypt_cosign_key
from controller.push.signstore import artifact_type, attachment_tag

DIGEST = "sha256:" + "ab" * 32


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_simple_signing_payload_names_repo_and_digest() -> None:
    doc = json.loads(simple_signing_payload("127.0.0.1:5000/acme/model", DIGEST))
    assert doc["critical"] == {
        "identity": {"docker-reference": "127.0.0.1:5000/acme/model"},
        "image": {"docker-manifest-digest": DIGEST},
        "type": "cosign container image signature",
    }
    assert doc["optional"] is None


def test_signature_and_envelope_verify_with_the_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"payload"
    key.public_key().verify(base64.b64decode(sign(key, data)), data, ec.ECDSA(hashes.SHA256()))
    env = json.loads(dsse_envelope(key, {"_type": "x"}))
    assert env["payloadType"] == IN_TOTO
    payload = base64.b64decode(env["payload"])
    sig = base64.b64decode(env["signatures"][0]["sig"])
    key.public_key().verify(sig, pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))


def test_provenance_statement_shape() -> None:
    context = {
        "params": {"source": "dir:///workspace/model", "image": "r/acme/m:v1", "sign": "true"},
        "builder": {
            "id": "quay.io/modelpush/model-image-push:0.1.0",
            "version": {"model-image-push": "0.1.0"},
        },
        "invocation": {"namespace": "ns", "name": "run-1", "uid": "u-1", "pipelineRun": "pr"},
        "startedOn": "2026-12-01T12:00:00Z",
    }
    deps = [{"name": "models/a.bin", "digest": {"sha256": "00" * 32}, "annotations": {"size": 3}}]
    st = provenance_statement("r/acme/m", [DIGEST, DIGEST], context, deps, "2026-12-01T12:01:00Z")
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == SLSA_PROVENANCE_V1
    assert st["subject"] == [{"name": "r/acme/m", "digest": {"sha256": "ab" * 32}}]
    bd, rd = st["predicate"]["buildDefinition"], st["predicate"]["runDetails"]
    assert bd["externalParameters"] == context["params"]
    assert bd["resolvedDependencies"] == deps
    assert bd["internalParameters"]["invocation"]["pipelineRun"] == "pr"
    assert rd["builder"]["id"] == "quay.io/modelpush/model-image-push:0.1.0"
    assert rd["metadata"] == {
        "invocationId": "k8s://ns/customruns/run-1/u-1",
        "startedOn": "2026-12-01T12:00:00Z",
        "finishedOn": "2026-12-01T12:01:00Z",
    }


def test_attachment_names() -> None:
    assert attachment_tag(DIGEST, "sig") == "sha256-" + "ab" * 32 + ".sig"
    assert artifact_type("att") == "application/vnd.dev.cosign.artifact.att.v1+json"


def _pem(body: bytes, kind: str = "ENCRYPTED SIGSTORE PRIVATE KEY") -> bytes:
    return f"-----BEGIN {kind}-----\n{base64.b64encode(body).decode()}\n-----END {kind}-----\n".encode()


def _doc(**over: object) -> bytes:
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": 32768, "r": 8, "p": 1},
            "salt": base64.b64encode(b"s" * 32).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(b"n" * 24).decode()},
        "ciphertext": base64.b64encode(b"c" * 64).decode(),
    }
    doc.update(over)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a cosign private key"),
        (_pem(b"not json"), "not the JSON cosign writes"),
        (_pem(_doc(cipher={"name": "aes-gcm", "nonce": ""})), "unsupported key encryption"),
        (
            _pem(_doc(kdf={"name": "scrypt", "params": {"N": 1 << 24, "r": 8, "p": 1}, "salt": ""})),
            "out of range",
        ),
        (
            _pem(_doc(kdf={"name": "scrypt", "params": {"N": 1000, "r": 8, "p": 1}, "salt": ""})),
            "out of range",
        ),
        (_pem(_doc(cipher={"name": "nacl/secretbox", "nonce": "AAAA"})), "nonce has the wrong length"),
        (_pem(_doc()), "wrong password"),
    ],
)
def test_bad_key_files_say_what_is_wrong(pem: bytes, message: str) -> None:
    with pytest.raises(SigningError, match=message) as err:
        decrypt_cosign_key(pem, b"pw")
    assert "c" * 20 not in str(err.value)


def test_bad_provenance_context_fails_before_anything_is_pushed(tmp_path, capsys) -> None:
    from controller.push.cli import main

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f").write_text("x")
    argv = ["build", "--context", str(tmp_path / "m"), "--image", "127.0.0.1:1/a/b:v1"]
    rc = main([*argv, "--sign-key", str(tmp_path / "k"), "--provenance-context", "{not json"])
    assert rc == 2
    assert "--provenance-context is not JSON" in capsys.readouterr().out
