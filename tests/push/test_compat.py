"""buildah / skopeo compatibility subcommands: Debian's binaries, storage on a given dir, same result JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hack.registry import LocalRegistry

from .helpers import run_build, run_cli

pytestmark = pytest.mark.registry


def test_buildah_mode_pushes_and_cleans_storage(registry: LocalRegistry, tmp_path: Path) -> None:
    ctx = tmp_path / "model"
    (ctx / "nested").mkdir(parents=True)
    (ctx / "nested" / "w.bin").write_bytes(b"w" * 10_000)
    (ctx / "config.json").write_text("{}")
    storage = tmp_path / "pvc" / "storage"
    run = run_cli(
        "buildah",
        "--context",
        str(ctx),
        "--image",
        f"{registry.host}/compat/buildah:v1",
        "--storage",
        str(storage),
        "--insecure-registry",
        registry.host,
        result_file=tmp_path / "r.json",
    )
    assert run.rc == 0, run.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["digest"].startswith("sha256:")
    assert res["url"] == f"{registry.host}/compat/buildah@{res['digest']}"
    assert res["layers"] >= 1 and res["size"] > 0  # buildah push gzips layers
    # The run's storage dir is gone once pushed: staged layers, generated Containerfile, digest, HOME.
    assert not storage.exists()


def test_skopeo_mode_copies_digest_preserved(registry: LocalRegistry, tmp_path: Path) -> None:
    ctx = tmp_path / "model"
    ctx.mkdir()
    (ctx / "w.bin").write_bytes(b"s" * 5000)
    built = run_build(registry.host, ctx, "compat/src:v1")
    assert built.rc == 0, built.stderr
    run = run_cli(
        "skopeo",
        f"{registry.host}/compat/src:v1",
        f"docker://{registry.host}/compat/skopeo:v1",
        "--tmpdir",
        str(tmp_path / "pvc"),
        "--insecure-registry",
        registry.host,
    )
    assert run.rc == 0, run.stderr
    assert run.result["digest"] == built.result["digest"]
    assert not (tmp_path / "pvc").exists()  # the run's temp dir and the dir it was made in
    assert run.result["layers"] == built.result["layers"] == 2  # the busybox base layer and w.bin


def test_skopeo_mode_missing_source_fails_with_registry_error(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    run = run_cli(
        "skopeo",
        f"{registry.host}/compat/none:v1",
        f"{registry.host}/compat/none2:v1",
        "--tmpdir",
        str(tmp_path),
        "--insecure-registry",
        registry.host,
    )
    assert run.rc in (3, 4), run.stderr  # registry 2.8 answers 401-less "manifest unknown"
    assert run.result["error"]["kind"] in ("registry", "auth")
