"""format: modelpack and both, read back by independent clients: skopeo, the model-spec v0.0.7 JSON schema
(from its Go module) checked with jsonschema, and modctl v0.2.2 (built by hack/build-modctl.sh)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from hack.kserve import module_dir
from hack.registry import LocalRegistry

from .helpers import REPO_ROOT, run_build

pytestmark = pytest.mark.registry

ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
CONFIG = "application/vnd.cncf.model.config.v1+json"
META = {"--model-name": "tiny-chat", "--model-version": "1.2.0", "--model-family": "tiny"}
FILES = {
    "config.json": "application/vnd.cncf.model.weight.config.v1.tar",
    "model-00001-of-00002.safetensors": "application/vnd.cncf.model.weight.v1.tar",
    "model-00002-of-00002.safetensors": "application/vnd.cncf.model.weight.v1.tar",
    "tokenizer.json": "application/vnd.cncf.model.weight.config.v1.tar",
    "README.md": "application/vnd.cncf.model.doc.v1.tar",
    "LICENSE": "application/vnd.cncf.model.doc.v1.tar",
    "handler.py": "application/vnd.cncf.model.code.v1.tar",
}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack") / "model"
    root.mkdir()
    for i, name in enumerate(FILES):
        body = hashlib.sha256(name.encode()).digest() * (2000 * (i + 1))
        (root / name).write_bytes(body)
    hf = {"architectures": ["TinyForCausalLM"], "torch_dtype": "bfloat16", "model_type": "tiny"}
    (root / "config.json").write_text(json.dumps(hf))
    return root


@pytest.fixture(scope="module")
def schema() -> dict:
    spec = module_dir("github.com/modelpack/model-spec", "v0.0.7")
    return json.loads((spec / "schema" / "config-schema.json").read_text())


def _get(registry: LocalRegistry, path: str, accept: str = "") -> bytes:
    req = urllib.request.Request(
        f"http://{registry.host}/v2/{path}", headers={"Accept": accept} if accept else {}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def _raw(ref: str) -> dict:
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out)


def _check_modelpack(registry: LocalRegistry, repo: str, manifest: dict, schema: dict) -> dict:
    assert manifest["artifactType"] == ARTIFACT
    assert manifest["config"]["mediaType"] == CONFIG
    config = json.loads(_get(registry, f"{repo}/blobs/{manifest['config']['digest']}"))
    jsonschema.validate(config, schema)
    assert config["descriptor"]["name"] == "tiny-chat"
    assert config["descriptor"]["version"] == "1.2.0"
    assert config["descriptor"]["family"] == "tiny"
    assert config["config"] == {
        "architecture": "TinyForCausalLM",
        "precision": "bfloat16",
        "format": "safetensors",
    }
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in manifest["layers"]]
    kinds = {}
    for layer in manifest["layers"]:
        path = layer["annotations"]["org.cncf.model.filepath"]
        meta = json.loads(layer["annotations"]["org.cncf.model.file.metadata+json"])
        assert meta["name"] == path and meta["uid"] == meta["gid"] == 0 and meta["typeflag"] == ord("0")
        kinds[path.removeprefix("models/")] = layer["mediaType"]
    assert kinds == FILES
    for key in ("org.opencontainers.image.created", "org.opencontainers.image.title"):
        assert key in manifest["annotations"]
    return config


def test_modelpack_manifest_is_valid(registry: LocalRegistry, model: Path, schema: dict) -> None:
    run = run_build(registry.host, model, "pack/only:v1", "--format", "modelpack", *sum(META.items(), ()))
    assert run.rc == 0, run.stderr
    manifest = _raw(f"{registry.host}/pack/only:v1")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    _check_modelpack(registry, "pack/only", manifest, schema)
    assert (
        run.result["digest"]
        == "sha256:" + hashlib.sha256(_get(registry, "pack/only/manifests/v1", ARTIFACT_ACCEPT)).hexdigest()
    )


ARTIFACT_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def test_both_shares_every_blob_and_the_second_manifest_costs_only_its_config(
    registry: LocalRegistry, model: Path, schema: dict
) -> None:
    args = sum(META.items(), ())
    run = run_build(registry.host, model, "pack/both:v1", "--format", "both", *args)
    assert run.rc == 0, run.stderr
    index = _raw(f"{registry.host}/pack/both:v1")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert (
        run.result["index_digest"]
        == "sha256:"
        + hashlib.sha256(
            _get(registry, "pack/both/manifests/v1", "application/vnd.oci.image.index.v1+json")
        ).hexdigest()
    )
    car_desc, pack_desc = index["manifests"]
    assert car_desc["platform"] == {"os": "linux", "architecture": "amd64"}
    assert pack_desc["artifactType"] == ARTIFACT and "platform" not in pack_desc
    assert run.result["digest"] == car_desc["digest"]
    assert run.result["modelpack_digest"] == pack_desc["digest"]
    car = _raw(f"{registry.host}/pack/both@{car_desc['digest']}")
    pack = _raw(f"{registry.host}/pack/both@{pack_desc['digest']}")
    _check_modelpack(registry, "pack/both", pack, schema)
    car_layers = {layer["digest"]: layer["size"] for layer in car["layers"]}
    assert {layer["digest"] for layer in pack["layers"]} <= car_layers.keys()
    # Each blob went up once: every layer of the image (model files + busybox) and the two configs.
    assert (
        run.result["bytes_uploaded"]
        == sum(car_layers.values()) + car["config"]["size"] + pack["config"]["size"]
    )
    assert _raw(f"{registry.host}/pack/both:v1-modelpack") == pack

    # Measured on its own: a ModelPack push after the modelcar one uploads only its config.
    car_run = run_build(registry.host, model, "pack/second:v1", *args)
    pack_run = run_build(registry.host, model, "pack/second:mp", "--format", "modelpack", *args)
    assert car_run.rc == pack_run.rc == 0
    second = _raw(f"{registry.host}/pack/second:mp")
    assert pack_run.result["bytes_uploaded"] == second["config"]["size"]
    assert pack_run.result["bytes_skipped"] == sum(layer["size"] for layer in second["layers"])


def test_metadata_is_reproducible_and_on_manifest_and_config(
    registry: LocalRegistry, model: Path, tmp_path: Path
) -> None:
    args = [*sum(META.items(), ()), "--source-url", "https://example.com/tiny", "--revision", "abc123"]
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    a = run_build(registry.host, model, "meta/a:v1", *args, env=env)
    b = run_build(registry.host, model, "meta/b:v1", *args, env=env)
    assert a.rc == b.rc == 0
    assert a.result["digest"] == b.result["digest"]  # another repository, another run: one digest
    manifest = _raw(f"{registry.host}/meta/a:v1")
    want = {
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
        "org.opencontainers.image.title": "tiny-chat",
        "org.opencontainers.image.source": "https://example.com/tiny",
        "org.opencontainers.image.revision": "abc123",
        "org.opencontainers.image.version": "1.2.0",
        "modelpush.dev/model-name": "tiny-chat",
        "modelpush.dev/model-version": "1.2.0",
        "modelpush.dev/model-family": "tiny",
    }
    assert manifest["annotations"] == want
    config = json.loads(_get(registry, f"meta/a/blobs/{manifest['config']['digest']}"))
    assert config["config"]["Labels"] == want
    assert config["created"] == want["org.opencontainers.image.created"]


def test_modctl_pulls_and_extracts_the_artifact(registry: LocalRegistry, model: Path, tmp_path: Path) -> None:
    modctl = subprocess.run(
        ["bash", "hack/build-modctl.sh"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    run = run_build(registry.host, model, "pack/modctl:v1", "--format", "both", *sum(META.items(), ()))
    assert run.rc == 0, run.stderr
    out = tmp_path / "extracted"
    pull = subprocess.run(
        [
            modctl,
            "--storage-dir",
            str(tmp_path / "store"),
            "--no-progress",
            "pull",
            "--plain-http",
            "--extract-dir",
            str(out),
            f"{registry.host}/pack/modctl:v1-modelpack",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pull.returncode == 0, pull.stdout + pull.stderr
    for name in FILES:
        assert (out / "models" / name).read_bytes() == (model / name).read_bytes(), name
