"""The registry matrix: every push feature against each real registry implementation we can build here.

Per registry: build (checked by skopeo), copy from another registry, same-registry mount, resume after a
dropped connection, a `base` image, an OCI index, each upload strategy, and the referrers API. What each
registry supports is declared in `SUPPORTS` (the README's compatibility table) and checked, so a
claim there that stops being true fails here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.push.build import build_image
from controller.push.client import OCI_MANIFEST, ClientOptions, RegistryClient, UploadStrategy
from controller.push.copy import copy_image
from controller.push.reference import parse_reference
from hack.registry import KINDS, LocalRegistry

from .faultproxy import FaultProxy
from .helpers import expected_files, image_files, make_tree, skopeo_to_dir
from .test_copy import manifests_present, push_index

pytestmark = pytest.mark.registry

# What each implementation does (README "Registry compatibility"): cross-repository mount ("shared":
# blobs are global, so a blob pushed to one repository already exists in every other), and the OCI 1.1
# referrers API (go-containerregistry has one, but its cmd/registry does not switch it on).
SUPPORTS: dict[str, dict[str, bool | str]] = {
    "docker-registry": {"mount": True, "referrers": False},
    "distribution": {"mount": True, "referrers": False},
    "ggcr": {"mount": "shared", "referrers": False},
}


@pytest.fixture(scope="module", params=KINDS)
def matrix_registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path_factory.mktemp(f"matrix-{request.param}"), kind=request.param)
    reg.start_sync()
    try:
        yield reg
    finally:
        reg.stop_sync()


def _client(*regs: LocalRegistry | FaultProxy, **kw: object) -> RegistryClient:
    return RegistryClient(ClientOptions(insecure=frozenset(r.host for r in regs), backoff=0.05), **kw)  # type: ignore[arg-type]


def _model(root: Path, seed: str, size: int = 3_000_000) -> Path:
    root.mkdir(parents=True)
    payload = hashlib.sha256(seed.encode()).digest() * (size // 32)
    (root / "weights.bin").write_bytes(payload)
    (root / "config.json").write_text(json.dumps({"seed": seed}))
    return root


async def test_build_is_read_back_by_skopeo(matrix_registry: LocalRegistry, tmp_path: Path) -> None:
    reg = matrix_registry
    ctx = make_tree(tmp_path / "model")
    async with _client(reg) as client:
        res = await build_image(client, ctx, parse_reference(f"{reg.host}/matrix/build:v1"))
    manifest = skopeo_to_dir(f"{reg.host}/matrix/build:v1", tmp_path / "out", "--src-tls-verify=false")
    assert image_files(tmp_path / "out", manifest) == expected_files(ctx)
    assert res.bytes_uploaded > 0


async def test_copy_from_another_registry_and_mount_within(
    matrix_registry: LocalRegistry, registry: LocalRegistry, tmp_path: Path
) -> None:
    reg = matrix_registry
    ctx = _model(tmp_path / "model", f"copy-{reg.kind}")
    async with _client(reg, registry) as client:
        src = await build_image(client, ctx, parse_reference(f"{registry.host}/matrix/src-{reg.kind}:v1"))
        copied = await copy_image(
            client,
            parse_reference(f"{registry.host}/matrix/src-{reg.kind}:v1"),
            parse_reference(f"{reg.host}/matrix/copied:v1"),
        )
        assert copied.digest == src.digest
        assert copied.bytes_uploaded == copied.size > 0
        within = await copy_image(
            client,
            parse_reference(f"{reg.host}/matrix/copied:v1"),
            parse_reference(f"{reg.host}/other/copied:v1"),
        )
    assert within.digest == src.digest
    if SUPPORTS[reg.kind]["mount"] == "shared":
        assert within.bytes_skipped == within.size
    else:
        assert within.bytes_mounted == within.size


async def test_resume_after_dropped_connection(matrix_registry: LocalRegistry, tmp_path: Path) -> None:
    reg = matrix_registry
    ctx = _model(tmp_path / "model", f"resume-{reg.kind}", 6_000_000)
    proxy = FaultProxy(reg.port, drop_after=2_500_000, drops=1)
    await proxy.start()
    try:
        async with _client(reg, proxy) as client:
            res = await build_image(client, ctx, parse_reference(f"{proxy.host}/matrix/resume:v1"))
            assert proxy.dropped == 1
            _, _, digest = await client.get_manifest(reg.host, "matrix/resume", "v1")
    finally:
        await proxy.stop()
    assert digest == res.digest
    async with _client(reg) as client:
        clean = await build_image(client, ctx, parse_reference(f"{reg.host}/matrix/resume-clean:v1"))
    assert clean.digest == res.digest


async def test_base_image(matrix_registry: LocalRegistry, tmp_path: Path) -> None:
    reg = matrix_registry
    async with _client(reg) as client:
        base = await build_image(
            client, _model(tmp_path / "base", "base"), parse_reference(f"{reg.host}/matrix/base:v1")
        )
        res = await build_image(
            client,
            _model(tmp_path / "model", "on-base"),
            parse_reference(f"{reg.host}/matrix/onbase:v1"),
            base=parse_reference(f"{reg.host}/matrix/base:v1"),
        )
        base_raw, _, _ = await client.get_manifest(reg.host, "matrix/base", base.digest)
        raw, media_type, _ = await client.get_manifest(reg.host, "matrix/onbase", res.digest)
    assert media_type == OCI_MANIFEST
    base_layers = [x["digest"] for x in json.loads(base_raw)["layers"]]
    layers = [x["digest"] for x in json.loads(raw)["layers"]]
    assert layers[: len(base_layers)] == base_layers and len(layers) > len(base_layers)
    # The base's layers never travelled through us when the registry mounts.
    if SUPPORTS[reg.kind]["mount"] is True:
        assert res.bytes_mounted > 0


async def test_oci_index(matrix_registry: LocalRegistry, tmp_path: Path) -> None:
    reg = matrix_registry
    digest = await push_index(reg, tmp_path, "matrix/multi")
    async with _client(reg) as client:
        copied = await copy_image(
            client,
            parse_reference(f"{reg.host}/matrix/multi:multi"),
            parse_reference(f"{reg.host}/matrix/multi2:v1"),
        )
    assert copied.digest == digest
    assert len(await manifests_present(reg, "matrix/multi2", digest)) == 2


@pytest.mark.parametrize("strategy", ["chunked:1Mi", "monolithic", "streamed"])
async def test_upload_strategies(matrix_registry: LocalRegistry, tmp_path: Path, strategy: str) -> None:
    reg = matrix_registry
    ctx = _model(tmp_path / "model", f"{strategy}-{reg.kind}", 2_500_000)
    for sendfile in (True, False):
        async with _client(reg, uploads={reg.host: UploadStrategy.parse(strategy)}) as client:
            client.use_sendfile = sendfile
            repo = f"matrix/strategy-{strategy.split(':')[0]}-{int(sendfile)}"
            res = await build_image(client, ctx, parse_reference(f"{reg.host}/{repo}:v1"))
            raw, _, digest = await client.get_manifest(reg.host, repo, "v1")
            layer = max(json.loads(raw)["layers"], key=lambda x: x["size"])
            body = await client.get_blob_bytes(reg.host, repo, layer["digest"], limit=8 << 20)
        assert digest == res.digest and len(body) == layer["size"]


async def test_referrers(matrix_registry: LocalRegistry, tmp_path: Path) -> None:
    reg = matrix_registry
    async with _client(reg) as client:
        subject = await build_image(
            client, _model(tmp_path / "m", "subject", 1000), parse_reference(f"{reg.host}/matrix/subj:v1")
        )
        subj_raw, _, _ = await client.get_manifest(reg.host, "matrix/subj", subject.digest)
        empty = await client.put_blob(reg.host, "matrix/subj", b"{}")
        artifact = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.test",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subj_raw)},
            }
        ).encode()
        referrer = await client.put_manifest(reg.host, "matrix/subj", "sha256-ref", artifact, OCI_MANIFEST)
        index = await client.referrers(reg.host, "matrix/subj", subject.digest)
    if SUPPORTS[reg.kind]["referrers"]:
        assert index is not None
        assert [m["digest"] for m in index["manifests"]] == [referrer]
    else:
        assert index is None
