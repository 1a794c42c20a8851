"""A connection dropped mid-upload (fault-injecting TCP proxy in front of the real registry) is recovered."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from controller.push.build import build_image
from controller.push.client import ClientOptions, RegistryClient
from controller.push.reference import parse_reference
from hack.registry import LocalRegistry

from .faultproxy import FaultProxy

pytestmark = pytest.mark.registry


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "aiohttp"])
@pytest.mark.parametrize("chunk_size", [0, 1 << 20], ids=["single-patch", "chunked"])
async def test_dropped_connection_is_recovered(
    registry: LocalRegistry, tmp_path: Path, chunk_size: int, sendfile: bool
) -> None:
    ctx = tmp_path / "model"
    ctx.mkdir()
    payload = hashlib.sha256(f"{chunk_size}{sendfile}".encode()).digest() * (8_000_000 // 32)
    (ctx / "weights.bin").write_bytes(payload)
    port = int(registry.host.rsplit(":", 1)[1])
    proxy = FaultProxy(port, drop_after=3_000_000, drops=1)
    await proxy.start()
    try:
        opts = ClientOptions(insecure=frozenset([proxy.host, registry.host]), backoff=0.05)
        async with RegistryClient(opts) as client:
            client.use_sendfile = sendfile
            repo = f"resume/r{chunk_size}-{int(sendfile)}"
            res = await build_image(
                client, ctx, parse_reference(f"{proxy.host}/{repo}:v1"), chunk_size=chunk_size
            )
            assert proxy.dropped == 1
            # Verify directly against the registry (not through the proxy): the layer is exactly our tar.
            raw, _, digest = await client.get_manifest(registry.host, repo, "v1")
            assert digest == res.digest
            layer = json.loads(raw)["layers"][0]
            body = await client.get_blob_bytes(registry.host, repo, layer["digest"], limit=64 << 20)
            assert payload in body
            assert len(body) == layer["size"]
    finally:
        await proxy.stop()

    # The same content pushed without faults gives the same digest.
    async with RegistryClient(ClientOptions(insecure=frozenset([registry.host]))) as client:
        clean = await build_image(
            client, ctx, parse_reference(f"{registry.host}/resume/clean{chunk_size}:v1")
        )
    assert clean.digest == res.digest


async def test_chunked_upload_resumes_from_registry_range(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The connection dies as the 3rd chunk starts: the registry keeps the first two, we resume there."""
    ctx = tmp_path / "model"
    ctx.mkdir()
    payload = hashlib.sha256(b"resume").digest() * (5_000_000 // 32)
    (ctx / "weights.bin").write_bytes(payload)
    port = int(registry.host.rsplit(":", 1)[1])
    proxy = FaultProxy(port, drop_after=2_100_000, drops=1, cut_before=b"PATCH ")
    await proxy.start()
    try:
        opts = ClientOptions(insecure=frozenset([proxy.host, registry.host]), backoff=0.05)
        async with RegistryClient(opts) as client:
            res = await build_image(
                client, ctx, parse_reference(f"{proxy.host}/resume/range:v1"), chunk_size=1 << 20
            )
    finally:
        await proxy.stop()
    assert proxy.dropped == 1
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    resumes = [e for e in events if e["event"] == "resume"]
    assert len(resumes) == 1
    # The registry reported the chunks it had; we went on from there instead of starting over.
    assert resumes[0]["offset"] > 0 and resumes[0]["offset"] % (1 << 20) == 0
    assert not [e for e in events if e["event"] == "restart"]
    async with RegistryClient(ClientOptions(insecure=frozenset([registry.host]))) as client:
        clean = await build_image(client, ctx, parse_reference(f"{registry.host}/resume/range-clean:v1"))
    assert clean.digest == res.digest
