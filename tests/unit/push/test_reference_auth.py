"""Image references, auth challenges and Docker config.json parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from controller.push.auth import Credentials, load_authfile, parse_challenge
from controller.push.errors import InvalidInput
from controller.push.reference import parse_reference


@pytest.mark.parametrize(
    ("text", "registry", "repo", "ref"),
    [
        ("127.0.0.1:5000/ns/repo:tag", "127.0.0.1:5000", "ns/repo", "tag"),
        ("docker://quay.io/acme/m:fp16", "quay.io", "acme/m", "fp16"),
        ("localhost/a/b", "localhost", "a/b", "latest"),
        ("ubuntu", "registry-1.docker.io", "library/ubuntu", "latest"),
        ("acme/model:1", "registry-1.docker.io", "acme/model", "1"),
        ("r.io/a@sha256:" + "a" * 64, "r.io", "a", "sha256:" + "a" * 64),
    ],
)
def test_parse_reference(text: str, registry: str, repo: str, ref: str) -> None:
    r = parse_reference(text)
    assert (r.registry, r.repository, r.reference) == (registry, repo, ref)


@pytest.mark.parametrize("text", ["", "r.io/Upper/x", "r.io/a:bad tag", "r.io/a@sha256:short", "r.io/a//b"])
def test_bad_references(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(text)


def test_parse_bearer_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.io/token",service="registry.io",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.io/token",
        "service": "registry.io",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_challenge('Basic realm="x"').scheme == "basic"


def test_load_authfile_auth_and_plain_fields(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p:with:colons").decode()},
                    "127.0.0.1:5000": {"username": "alice", "password": "secret"},
                }
            }
        )
    )
    creds = load_authfile(p)
    assert creds["registry-1.docker.io"] == Credentials("u", "p:with:colons")
    assert creds["127.0.0.1:5000"] == Credentials("alice", "secret")


def test_load_authfile_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        load_authfile(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidInput, match="JSON"):
        load_authfile(tmp_path / "bad.json")
