"""Bearer token flow against a real docker-registry configured for token auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.push.auth import Credentials
from controller.push.build import build_image
from controller.push.client import ClientOptions, RegistryClient
from controller.push.copy import copy_image
from controller.push.errors import AuthError
from controller.push.reference import parse_reference
from hack.registry import LocalRegistry

from .tokenserver import TokenServer, token_registry

pytestmark = pytest.mark.registry


# Token auth on both registries of the matrix that have it (go-containerregistry's has no auth).
@pytest.fixture(scope="module", params=["docker-registry", "distribution"])
async def token_setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[TokenServer, LocalRegistry]]:
    work = tmp_path_factory.mktemp("token")
    server = TokenServer(work / "auth", {"bob": "hunter2"}, expired_first=1)
    async with token_registry(work, server, kind=request.param) as reg:
        yield server, reg


def _model(tmp: Path) -> Path:
    ctx = tmp / "model"
    ctx.mkdir()
    (ctx / "w.bin").write_bytes(b"token" * 20_000)
    return ctx


async def test_bearer_push_reauth_and_mount(
    token_setup: tuple[TokenServer, LocalRegistry], tmp_path: Path
) -> None:
    server, reg = token_setup
    opts = ClientOptions(
        insecure=frozenset([reg.host]), credentials={reg.host: Credentials("bob", "hunter2")}
    )
    async with RegistryClient(opts) as client:
        res = await build_image(client, _model(tmp_path), parse_reference(f"{reg.host}/team/model:v1"))
        # The first token was issued already expired: the registry's 401 made the client fetch a new one.
        assert len(server.issued) >= 2
        assert any("push" in a["actions"] for c in server.issued for a in c["access"])
        copied = await copy_image(
            client,
            parse_reference(f"{reg.host}/team/model:v1"),
            parse_reference(f"{reg.host}/other/model:v1"),
        )
    assert copied.digest == res.digest
    assert copied.bytes_mounted == copied.size > 0
    # A mount needs pull on the source repository in the same token.
    assert any({a["name"] for a in c["access"]} == {"other/model", "team/model"} for c in server.issued), (
        server.issued
    )


async def test_bearer_wrong_password(token_setup: tuple[TokenServer, LocalRegistry], tmp_path: Path) -> None:
    _, reg = token_setup
    opts = ClientOptions(insecure=frozenset([reg.host]), credentials={reg.host: Credentials("bob", "nope")})
    async with RegistryClient(opts) as client:
        with pytest.raises(AuthError, match="bob"):
            await build_image(client, _model(tmp_path), parse_reference(f"{reg.host}/team/model:v2"))
    await asyncio.sleep(0)
