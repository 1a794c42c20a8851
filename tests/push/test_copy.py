"""copy mode: a multi-arch index between two registries (streamed) and within one (mounted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from controller.push.build import build_image
from controller.push.client import OCI_INDEX, ClientOptions, RegistryClient
from controller.push.reference import parse_reference
from hack.registry import LocalRegistry
from tests.fixtures.registry import TLS_PASSWORD, TLS_USER

from .helpers import authfile, run_build, run_cli, skopeo_manifest

pytestmark = pytest.mark.registry


async def push_index(reg: LocalRegistry, tmp: Path, repo: str) -> str:
    """Two single-platform images (different content) and an OCI index over them, pushed with our client."""
    opts = ClientOptions(insecure=frozenset([reg.host]))
    descs = []
    async with RegistryClient(opts) as client:
        for os_, arch in (("linux", "amd64"), ("linux", "arm64")):
            ctx = tmp / arch
            ctx.mkdir(parents=True)
            (ctx / "weights.bin").write_bytes(arch.encode() * 50_000)
            (ctx / "common.json").write_text("{}")
            ref = parse_reference(f"{reg.host}/{repo}:{arch}")
            res = await build_image(client, ctx, ref, platform=(os_, arch))
            raw, media_type, digest = await client.get_manifest(ref.registry, ref.repository, res.digest)
            descs.append(
                {
                    "mediaType": media_type,
                    "digest": digest,
                    "size": len(raw),
                    "platform": {"os": os_, "architecture": arch},
                }
            )
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}).encode()
        return await client.put_manifest(reg.host, repo, "multi", index, OCI_INDEX)


async def manifests_present(reg: LocalRegistry, repo: str, digest: str) -> list[str]:
    async with RegistryClient(ClientOptions(insecure=frozenset([reg.host]))) as client:
        raw, media_type, got = await client.get_manifest(reg.host, repo, digest)
        assert media_type == OCI_INDEX and got == digest
        children = [m["digest"] for m in json.loads(raw)["manifests"]]
        for child in children:
            craw, _, _ = await client.get_manifest(reg.host, repo, child)
            for blob in [json.loads(craw)["config"], *json.loads(craw)["layers"]]:
                assert await client.blob_exists(reg.host, repo, blob["digest"])
        return children


async def test_copy_index_between_registries(
    registry: LocalRegistry, second_registry: LocalRegistry, tmp_path: Path
) -> None:
    digest = await push_index(registry, tmp_path, "src/multi")
    run = run_cli(
        "copy",
        f"docker://{registry.host}/src/multi:multi",
        f"{second_registry.host}/dst/multi:v1",
        "--insecure-registry",
        registry.host,
        "--insecure-registry",
        second_registry.host,
    )
    assert run.rc == 0, run.stderr
    assert run.result["digest"] == digest
    assert run.result["url"] == f"{second_registry.host}/dst/multi@{digest}"
    assert run.result["bytes_uploaded"] == run.result["size"] > 0
    assert run.result["bytes_mounted"] == 0
    assert len(await manifests_present(second_registry, "dst/multi", digest)) == 2
    again = run_cli(
        "copy",
        f"{registry.host}/src/multi:multi",
        f"{second_registry.host}/dst/multi:v1",
        "--insecure-registry",
        registry.host,
        "--insecure-registry",
        second_registry.host,
    )
    assert again.rc == 0 and again.result["bytes_uploaded"] == 0


async def test_copy_index_within_registry_mounts(registry: LocalRegistry, tmp_path: Path) -> None:
    digest = await push_index(registry, tmp_path, "src/multi2")
    run = run_cli(
        "copy",
        f"{registry.host}/src/multi2:multi",
        f"{registry.host}/other/multi2:v1",
        "--insecure-registry",
        registry.host,
    )
    assert run.rc == 0, run.stderr
    assert run.result["digest"] == digest
    assert run.result["bytes_uploaded"] == 0
    assert run.result["bytes_mounted"] == run.result["size"] > 0
    assert len(await manifests_present(registry, "other/multi2", digest)) == 2


async def test_copy_to_tls_registry_with_auth(
    registry: LocalRegistry, tls_registry: LocalRegistry, tmp_path: Path
) -> None:
    digest = await push_index(registry, tmp_path, "src/multi3")
    auth = authfile(tmp_path / "auth.json", tls_registry.host, TLS_USER, TLS_PASSWORD)
    run = run_cli(
        "copy",
        f"{registry.host}/src/multi3:amd64",
        f"{tls_registry.host}/secure/copy:v1",
        "--insecure-registry",
        registry.host,
        "--authfile",
        str(auth),
        "--ca-file",
        str(tls_registry.ca_file),
        "--chunk-size",
        "64K",
    )
    assert run.rc == 0, run.stderr
    # read both sides with skopeo, not with our client or the CLI's own report
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(tls_registry.ca_file, certs / "ca.crt")
    pushed, manifest = skopeo_manifest(
        f"{tls_registry.host}/secure/copy:v1",
        "--creds",
        f"{TLS_USER}:{TLS_PASSWORD}",
        "--cert-dir",
        str(certs),
    )
    source, _ = skopeo_manifest(f"{registry.host}/src/multi3:amd64", "--tls-verify=false")
    index_digest, index = skopeo_manifest(f"{registry.host}/src/multi3:multi", "--tls-verify=false")
    amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    assert index_digest == digest and pushed == source == amd64  # the amd64 child, digest preserved
    assert len(manifest["layers"]) == 2
    assert run.result["digest"] == pushed and run.result["layers"] == 2


def test_copy_missing_source_is_a_registry_error(registry: LocalRegistry) -> None:
    run = run_cli(
        "copy",
        f"{registry.host}/nope/nothing:v1",
        f"{registry.host}/dst/nothing:v1",
        "--insecure-registry",
        registry.host,
    )
    assert run.rc == 4
    assert "not found" in run.result["error"]["message"]


async def test_build_on_multi_arch_base_picks_platform(registry: LocalRegistry, tmp_path: Path) -> None:
    await push_index(registry, tmp_path / "idx", "base/multi")
    ctx = tmp_path / "model"
    ctx.mkdir()
    (ctx / "m.bin").write_bytes(b"m" * 1000)
    run = run_build(
        registry.host,
        ctx,
        "models/onmulti:v1",
        "--base",
        f"{registry.host}/base/multi:multi",
        "--platform",
        "linux/arm64",
    )
    assert run.rc == 0, run.stderr
    assert run.result["layers"] == 3
    async with RegistryClient(ClientOptions(insecure=frozenset([registry.host]))) as client:
        raw, _, _ = await client.get_manifest(registry.host, "models/onmulti", "v1")
        manifest = json.loads(raw)
        config = json.loads(
            await client.get_blob_bytes(registry.host, "models/onmulti", manifest["config"]["digest"])
        )
    assert config["architecture"] == "arm64"
    assert len(config["rootfs"]["diff_ids"]) == 3


def test_registry_launcher_cli(tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.request

    from .helpers import REPO_ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "hack.registry", "serve", "--dir", str(tmp_path / "r")],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        host = proc.stdout.readline().strip()
        assert host.startswith("127.0.0.1:")
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=5) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0
