"""A push that outlives its registry bearer token renews it and finishes without resending anything.

The token service issues tokens that work 20 s at the registry; a throttled link makes the push last
over a minute. Before the fix the client kept its first token until the registry refused a request
with a 401 and then replayed it; now it renews the token ahead of expiry (the token service's
`expires_in`), so no request is refused and no byte crosses the link twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.push.auth import Credentials
from controller.push.build import build_image
from controller.push.client import ClientOptions, RegistryClient
from controller.push.reference import parse_reference
from hack.registry import LocalRegistry

from .faultproxy import FaultProxy
from .tokenserver import TokenServer, token_registry

pytestmark = pytest.mark.registry

LIFETIME = 20
FILE_SIZE = 32 << 20
RATE = 1.5 * (1 << 20)  # 3 files x 32 MiB at 1.5 MiB/s: about 64 s, three token lifetimes


@pytest.fixture(scope="module")
async def short_tokens(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[TokenServer, LocalRegistry]]:
    work = tmp_path_factory.mktemp("short-tokens")
    server = TokenServer(work / "auth", {"bob": "hunter2"}, lifetime=LIFETIME)
    async with token_registry(work, server) as reg:
        yield server, reg


@pytest.mark.parametrize(
    ("sendfile", "chunk_size"),
    [(False, 8 << 20), (True, 8 << 20), (True, 0)],
    ids=["chunked-aiohttp", "chunked-sendfile", "streamed-sendfile"],
)
async def test_push_outlives_token(
    short_tokens: tuple[TokenServer, LocalRegistry],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sendfile: bool,
    chunk_size: int,
) -> None:
    server, reg = short_tokens
    ctx = tmp_path / "model"
    ctx.mkdir()
    for i in range(3):
        block = hashlib.sha256(f"{i}-{sendfile}-{chunk_size}".encode()).digest() * (1 << 15)  # 1 MiB
        (ctx / f"part-{i}.bin").write_bytes(block * (FILE_SIZE >> 20))
    proxy = FaultProxy(reg.port, rate=RATE)
    await proxy.start()
    before = len(server.issued)
    try:
        opts = ClientOptions(
            insecure=frozenset([proxy.host, reg.host]),
            credentials={proxy.host: Credentials("bob", "hunter2")},
        )
        async with RegistryClient(opts) as client:
            client.use_sendfile = sendfile
            repo = f"refresh/{'sendfile' if sendfile else 'aiohttp'}-{chunk_size}"
            res = await build_image(
                client,
                ctx,
                parse_reference(f"{proxy.host}/{repo}:v1"),
                chunk_size=chunk_size,
                # one file after the other, so body-carrying requests start long after the first token
                concurrency=1,
            )
            raw, _, digest = await client.get_manifest(proxy.host, repo, "v1")
    finally:
        await proxy.stop()
    assert digest == res.digest
    assert sorted(layer["size"] for layer in json.loads(raw)["layers"])[-1] > FILE_SIZE
    # Every byte crossed the link once: three files (plus tar headers), a config and a manifest.
    assert proxy.total < 3 * FILE_SIZE + (1 << 20)
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    push_tokens = [c for c in server.issued[before:] if any("push" in a["actions"] for a in c["access"])]
    # The push outlived several tokens, and each renewal happened before the registry refused one: the
    # only 401 is the /v2/ challenge that starts the login.
    assert len(push_tokens) >= 3, push_tokens
    assert proxy.unauthorized == 1
    assert "token-refresh" in kinds
    # Nothing was resent: no retry, no resume from the registry's offset, no blob restarted.
    assert not {"retry", "resume", "restart"} & set(kinds), [e for e in events if e["event"] != "progress"]
