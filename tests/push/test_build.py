"""build mode against Debian's real docker-registry, verified by skopeo (an independent client)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hack.registry import LocalRegistry
from tests.fixtures.registry import TLS_PASSWORD, TLS_USER

from .helpers import authfile, expected_files, image_files, make_tree, run_build, run_cli, skopeo_to_dir

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("model") / "model")


def test_build_tree_matches_source_bytes_and_modes(
    registry: LocalRegistry, tree: Path, tmp_path: Path
) -> None:
    run = run_build(registry.host, tree, "models/tree:v1", "--result-file", str(tmp_path / "result.json"))
    assert run.rc == 0, run.stderr
    res = run.result
    assert res["image"] == f"{registry.host}/models/tree:v1"
    assert res["url"] == f"{registry.host}/models/tree@{res['digest']}"
    assert json.loads((tmp_path / "result.json").read_text()) == res
    assert len((tmp_path / "result.json").read_bytes()) < 4096
    assert '"event": "progress"' in run.stderr

    manifest = skopeo_to_dir(f"{registry.host}/models/tree:v1", tmp_path / "out", "--src-tls-verify=false")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert res["layers"] == len(manifest["layers"])
    got, want = image_files(tmp_path / "out", manifest), expected_files(tree)
    # The default base layer (tests/push/test_baselayer.py checks it in depth) sits under bin/.
    base = {name: got.pop(name) for name in list(got) if name == "bin" or name.startswith("bin/")}
    assert base["bin/busybox"][:2] == ("file", 0o755)
    assert base["bin/sh"] == ("symlink", 0o777, "busybox")
    assert got.keys() == want.keys()
    for name, entry in want.items():
        assert got[name] == entry, name

    titles = [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]]
    assert "sub dir/ünï cødé/tokenizer model.json" in titles
    config = json.loads((tmp_path / "out" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]
    assert res["size"] == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def test_build_is_deterministic_and_repush_uploads_nothing(
    registry: LocalRegistry, tree: Path, tmp_path: Path
) -> None:
    first = run_build(registry.host, tree, "models/det:a")
    assert first.rc == 0, first.stderr
    # A copy elsewhere has other mtimes, owners and paths: the digest must not change.
    clone = tmp_path / "clone"
    shutil.copytree(tree, clone, symlinks=True)
    second = run_build(registry.host, clone, "models/det:b")
    assert second.rc == 0, second.stderr
    assert second.result["digest"] == first.result["digest"]
    again = run_build(registry.host, tree, "models/det:a")
    assert again.rc == 0
    assert again.result["digest"] == first.result["digest"]
    assert again.result["bytes_uploaded"] == 0
    assert again.result["bytes_skipped"] > 0


def test_source_date_epoch_changes_digest(registry: LocalRegistry, tree: Path) -> None:
    plain = run_build(registry.host, tree, "models/sde:a")
    dated = run_build(registry.host, tree, "models/sde:b", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert plain.rc == dated.rc == 0
    assert plain.result["digest"] != dated.result["digest"]


def test_build_on_base_image(registry: LocalRegistry, tree: Path, tmp_path: Path) -> None:
    base_ctx = tmp_path / "base"
    (base_ctx / "bin").mkdir(parents=True)
    (base_ctx / "bin" / "sh").write_text("#!/bin/true\n")
    base = run_build(registry.host, base_ctx, "base/shell:1")
    assert base.rc == 0, base.stderr
    run = run_build(registry.host, tree, "models/onbase:v1", "--base", f"{registry.host}/base/shell:1")
    assert run.rc == 0, run.stderr
    manifest = skopeo_to_dir(f"{registry.host}/models/onbase:v1", tmp_path / "out", "--src-tls-verify=false")
    assert (
        run.result["layers"]
        == len(manifest["layers"])
        == base.result["layers"] + len(expected_files(tree)) - 3
    )
    # Base layers were already in the registry (another repo): mounted, not uploaded again.
    assert run.result["bytes_mounted"] > 0
    config = json.loads((tmp_path / "out" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])


def test_tls_registry_with_authfile_and_ca(tls_registry: LocalRegistry, tree: Path, tmp_path: Path) -> None:
    auth = authfile(tmp_path / "config.json", tls_registry.host, TLS_USER, TLS_PASSWORD)
    run = run_cli(
        "build",
        "--context",
        str(tree),
        "--image",
        f"{tls_registry.host}/secure/model:v1",
        "--authfile",
        str(auth),
        "--ca-file",
        str(tls_registry.ca_file),
    )
    assert run.rc == 0, run.stderr
    manifest = skopeo_to_dir(
        f"{tls_registry.host}/secure/model:v1",
        tmp_path / "out",
        "--src-cert-dir",
        str(tls_registry.ca_file.parent),
        "--src-creds",
        f"{TLS_USER}:{TLS_PASSWORD}",
    )
    assert len(manifest["layers"]) == run.result["layers"]


def test_wrong_password_is_an_auth_error(tls_registry: LocalRegistry, tree: Path, tmp_path: Path) -> None:
    auth = authfile(tmp_path / "config.json", tls_registry.host, TLS_USER, "wrong")
    run = run_cli(
        "build",
        "--context",
        str(tree),
        "--image",
        f"{tls_registry.host}/secure/model:v2",
        "--authfile",
        str(auth),
        "--ca-file",
        str(tls_registry.ca_file),
        result_file=tmp_path / "r.json",
    )
    assert run.rc == 3
    err = json.loads((tmp_path / "r.json").read_text())["error"]
    assert err["kind"] == "auth"
    assert "alice" in err["message"] and "--authfile" in err["message"]
    assert "wrong" not in err["message"]  # never echo secrets


def test_missing_credentials_is_an_auth_error(tls_registry: LocalRegistry, tree: Path) -> None:
    run = run_cli(
        "build",
        "--context",
        str(tree),
        "--image",
        f"{tls_registry.host}/secure/model:v3",
        "--ca-file",
        str(tls_registry.ca_file),
    )
    assert run.rc == 3
    assert run.result["error"]["kind"] == "auth"


def test_untrusted_certificate_is_refused_by_default(tls_registry: LocalRegistry, tree: Path) -> None:
    run = run_cli("build", "--context", str(tree), "--image", f"{tls_registry.host}/secure/model:v4")
    assert run.rc == 5  # kind unreachable: RegistryUnreachable (TLS)
    assert "--ca-file" in run.result["error"]["message"]


def test_unreachable_registry_is_an_unreachable_error(tree: Path, tmp_path: Path) -> None:
    from hack.ports import free_port

    host = f"127.0.0.1:{free_port()}"
    run = run_cli(
        "build",
        "--context",
        str(tree),
        "--image",
        f"{host}/x/y:z",
        "--insecure-registry",
        host,
        "--retries",
        "2",
        result_file=tmp_path / "r.json",
    )
    assert run.rc == 5
    err = json.loads((tmp_path / "r.json").read_text())["error"]
    assert err["kind"] == "unreachable"
    assert host in err["message"]


def test_layer_budget_packs_small_files(registry: LocalRegistry, tree: Path, tmp_path: Path) -> None:
    run = run_build(registry.host, tree, "models/packed:v1", "--max-layers", "3", "--base", "none")
    assert run.rc == 0, run.stderr
    assert run.result["layers"] == 3
    manifest = skopeo_to_dir(f"{registry.host}/models/packed:v1", tmp_path / "out", "--src-tls-verify=false")
    assert len(manifest["layers"]) == 3
    assert image_files(tmp_path / "out", manifest) == expected_files(tree)
