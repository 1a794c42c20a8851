"""Registries with size limits: 413 on a large request falls back to smaller chunks; a blob refused for its
size fails with a message naming the file, its size and the registry's answer.

The limits are enforced by an HTTP proxy in front of the real docker-registry, the way GHCR (4 MiB per
request) and Quay (MAXIMUM_LAYER_SIZE) answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.push.build import build_image
from controller.push.client import ClientOptions, RegistryClient, UploadStrategy
from controller.push.reference import parse_reference
from hack.registry import LocalRegistry

from .helpers import run_build
from .limitproxy import LimitProxy

pytestmark = pytest.mark.registry

MiB = 1 << 20


def _model(tmp: Path, size: int, seed: str) -> Path:
    ctx = tmp / "model"
    ctx.mkdir()
    (ctx / "weights.bin").write_bytes(hashlib.sha256(seed.encode()).digest() * (size // 32))
    return ctx


@pytest.fixture(params=[413, 416])
async def ghcr_like(request: pytest.FixtureRequest, registry: LocalRegistry) -> AsyncIterator[LimitProxy]:
    proxy = LimitProxy(registry.host, request_limit=4 * MiB, status=request.param)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.mark.parametrize("strategy", ["streamed", "monolithic"])
@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "aiohttp"])
async def test_413_falls_back_to_smaller_chunks(
    ghcr_like: LimitProxy,
    registry: LocalRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    strategy: str,
    sendfile: bool,
) -> None:
    ctx = _model(tmp_path, 10 * MiB, f"{ghcr_like.status}-{strategy}-{sendfile}")
    opts = ClientOptions(insecure=frozenset([ghcr_like.host, registry.host]), backoff=0.01)
    async with RegistryClient(opts, uploads={"*": UploadStrategy.parse(strategy)}) as client:
        client.use_sendfile = sendfile
        repo = f"limits/{strategy}-{int(sendfile)}-{ghcr_like.status}"
        res = await build_image(client, ctx, parse_reference(f"{ghcr_like.host}/{repo}:v1"))
        raw, _, digest = await client.get_manifest(registry.host, repo, "v1")
        layer = max(json.loads(raw)["layers"], key=lambda x: x["size"])
        body = await client.get_blob_bytes(registry.host, repo, layer["digest"], limit=16 * MiB)
    assert digest == res.digest and len(body) == layer["size"] > 10 * MiB - 1
    assert ghcr_like.refused and ghcr_like.refused[0][1] > 4 * MiB
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    fallbacks = [e for e in events if e["event"] == "upload-fallback"]
    # said on the progress stream, with the new size, which fits the registry's limit
    assert fallbacks and fallbacks[0]["status"] == ghcr_like.status and fallbacks[0]["chunk_size"] <= 4 * MiB
    assert "chunks of" in fallbacks[0]["message"]


async def test_blob_over_the_layer_limit_is_a_clear_push_failure(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    proxy = LimitProxy(registry.host, blob_limit=3 * MiB)
    await proxy.start()
    try:
        ctx = _model(tmp_path, 5 * MiB, "too-large")
        # the CLI in a thread: the proxy serves from this test's event loop
        run = await asyncio.to_thread(run_build, proxy.host, ctx, "limits/toolarge:v1")
    finally:
        await proxy.stop()
    assert run.rc == 4, run.stderr[-2000:]
    err = run.result["error"]
    assert err["kind"] == "registry"  # -> reason PushFailed
    msg = err["message"]
    assert "/models/weights.bin" in msg  # the file
    assert "bytes" in msg and str(5 * MiB)[:3] in msg  # its size
    assert "SIZE_INVALID" in msg  # the registry's answer
    assert "Split the file" in msg and "MAXIMUM_LAYER_SIZE" in msg  # what to do
