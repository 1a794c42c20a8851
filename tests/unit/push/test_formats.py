"""Tables for issue 12: base none, format and metadata params -> builder args and results; ModelPack's
pure documents; the busybox layer's plan; KServe's commands read from its module source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.logic.decision import decide
from controller.logic.params import ParamsError, validate_params
from controller.logic.pod import Facts, PvcInfo, build_pod
from controller.model.params import PARAM_HELP, PushParams
from controller.push.baselayer import APPLETS, elf_arch, plan_base_layer
from controller.push.errors import InvalidInput
from controller.push.metadata import ImageMeta, image_annotations
from controller.push.modelpack import (
    hf_fields,
    layer_annotations,
    layer_kind,
    make_model_config,
    weight_format,
)
from controller.push.tarlayer import Entry, iter_layer_sync
from controller.settings import Settings
from hack.kserve import _go_concat, k8s_expand
from tests.unit.controller.helpers import NOW, pod, run, terminated

BASE = {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1"}
SETTINGS = Settings(leader_election=False, insecure_registries=["127.0.0.1:5000"])
FACTS = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",))}, secret="ok")


@pytest.mark.parametrize(
    ("extra", "args"),
    [
        ({}, []),
        ({"base": "none"}, ["--base", "none"]),
        ({"base": "q.io/acme/debian:12"}, ["--base", "q.io/acme/debian:12"]),
        ({"format": "Both"}, ["--format", "both"]),
        ({"format": "modelcar"}, []),
        (
            {
                "model-name": "tiny",
                "model-version": "1",
                "model-family": "llama",
                "source-url": "https://x/y",
            },
            [
                "--model-name",
                "tiny",
                "--model-version",
                "1",
                "--model-family",
                "llama",
                "--source-url",
                "https://x/y",
            ],
        ),
        ({"source-revision": "abc"}, ["--revision", "abc"]),
    ],
)
def test_build_params_become_builder_args(extra: dict[str, Any], args: list[str]) -> None:
    params = validate_params({**BASE, **extra})
    assert isinstance(params, PushParams), params
    plan = build_pod(run({**BASE, **extra}), params, 1, SETTINGS, FACTS, None)
    got = plan.manifest["spec"]["containers"][0]["args"]
    head = ["build", "--context", "/workspace/model", "--image", BASE["image"]]
    assert got[: len(head) + len(args)] == head + args


def test_buildah_base_none_means_scratch() -> None:
    params = validate_params({**BASE, "mode": "buildah", "base": "none"})
    assert isinstance(params, PushParams), params
    plan = build_pod(run({**BASE, "mode": "buildah", "base": "none"}), params, 1, SETTINGS, FACTS, None)
    assert "--base" not in plan.manifest["spec"]["containers"][0]["args"]


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"format": "oci"}, ["'format'", "modelcar, modelpack, both"]),
        ({"format": "both", "mode": "buildah"}, ["'format'", "only applies to the build mode"]),
        ({"model-name": "x", "source": "docker://q.io/a/b:1"}, ["'model-name'", "build mode"]),
        ({"model-version": "a\nb"}, ["'model-version'", "one line"]),
        ({"image": "none"}, ["'image'", "destination"]),
        ({"format": "modelpack", "base": "q.io/a/b:1"}, ["'base'", "no base"]),
    ],
)
def test_invalid_format_and_metadata(extra: dict[str, Any], needles: list[str]) -> None:
    err = validate_params({**BASE, **extra})
    assert isinstance(err, ParamsError)
    for needle in needles:
        assert needle in err.message


def test_index_digest_result_only_for_both() -> None:
    doc = {"image": "r/m:v1", "digest": "sha256:" + "a" * 64, "url": "r/m@x", "size": 1, "layers": 1}
    plain = decide(run(BASE), pod("Succeeded", **terminated(0, json.dumps(doc))), NOW, SETTINGS)
    both = {**doc, "index_digest": "sha256:" + "b" * 64, "modelpack_digest": "sha256:" + "c" * 64}
    indexed = decide(run(BASE), pod("Succeeded", **terminated(0, json.dumps(both))), NOW, SETTINGS)
    names = [r["name"] for r in (plain.status or {}).get("results", [])]
    assert "IMAGE_INDEX_DIGEST" not in names and "IMAGE_DIGEST" in names
    results = {r["name"]: r["value"] for r in (indexed.status or {})["results"]}
    assert results["IMAGE_INDEX_DIGEST"] == "sha256:" + "b" * 64
    assert results["IMAGE_DIGEST"] == "sha256:" + "a" * 64  # the runnable image, as Chains expects


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("model-00001-of-00004.safetensors", "weight"),
        ("pytorch_model.bin", "weight"),
        ("pytorch_model.bin.1", "weight"),
        ("gguf/q4.gguf", "weight"),
        ("model.onnx_data", "weight"),
        ("config.json", "weight.config"),
        ("tokenizer.model", "weight.config"),
        ("merges.txt", "weight.config"),
        ("README.md", "doc"),
        ("LICENSE", "doc"),
        ("handler.py", "code"),
        ("run.sh", "code"),
    ],
)
def test_layer_kind(path: str, kind: str) -> None:
    assert layer_kind(path) == kind


def test_layer_annotations_single_and_group() -> None:
    e = Entry("w/a.safetensors", "file", size=10, mode=0o600)
    kind, notes = layer_annotations([e], [0o644], 0)
    assert kind == "weight" and notes["org.cncf.model.filepath"] == "models/w/a.safetensors"
    meta = json.loads(notes["org.cncf.model.file.metadata+json"])
    assert meta == {
        "name": "models/w/a.safetensors",
        "mode": 0o644,
        "uid": 0,
        "gid": 0,
        "size": 10,
        "mtime": "1970-01-01T00:00:00Z",
        "typeflag": 48,
    }
    group = [Entry("a.json", "file"), Entry("b.json", "file"), Entry("c.py", "file")]
    assert layer_annotations(group, [0o644] * 3, 0) == (
        "weight.config",
        {"org.cncf.model.filepath": "models"},
    )


def test_model_config_from_params_and_hf() -> None:
    hf = hf_fields(
        {"architectures": ["MistralForCausalLM"], "torch_dtype": "bfloat16", "model_type": "mistral"}
    )
    assert hf == {"architecture": "MistralForCausalLM", "precision": "bfloat16", "family": "mistral"}
    assert hf_fields({"dtype": "float16"}) == {"precision": "float16"}
    assert hf_fields(None) == {}
    cfg = make_model_config(
        ["sha256:x"], ImageMeta(name="m", version="2"), 0, hf, weight_format(["a.safetensors"])
    )
    assert cfg["descriptor"] == {
        "createdAt": "1970-01-01T00:00:00Z",
        "name": "m",
        "title": "m",
        "version": "2",
        "family": "mistral",
    }
    assert cfg["config"]["format"] == "safetensors"
    assert make_model_config(["sha256:x"], ImageMeta(), 0, {}, None)["config"] == {}


def test_annotations_leave_out_what_is_not_given() -> None:
    assert image_annotations(ImageMeta(), 0) == {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}
    notes = image_annotations(ImageMeta(name="n", revision="r"), 86400)
    assert notes["org.opencontainers.image.created"] == "1970-01-02T00:00:00Z"
    assert notes["org.opencontainers.image.title"] == notes["modelpush.dev/model-name"] == "n"
    assert notes["org.opencontainers.image.revision"] == "r"


@pytest.mark.parametrize(
    ("head", "arch"),
    [
        (b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little"), "amd64"),
        (b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little"), "arm64"),
        (b"#!/bin/sh\n" + bytes(10), None),
        (b"\x7fELF", None),
    ],
)
def test_elf_arch(head: bytes, arch: str | None) -> None:
    assert elf_arch(head) == arch


def test_base_layer_plan_is_fixed_and_checks_the_binary(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little") + b"rest")
    plan = plan_base_layer(fake, "amd64")
    data = b"".join(iter_layer_sync(plan))
    assert len(data) == plan.size and len(data) % 512 == 0
    assert data == b"".join(iter_layer_sync(plan_base_layer(fake, "amd64")))
    assert data.count(b"busybox\x00") >= len(APPLETS)
    with pytest.raises(InvalidInput, match="for amd64, not arm64"):
        plan_base_layer(fake, "arm64")
    with pytest.raises(InvalidInput, match="busybox-static"):
        plan_base_layer(tmp_path / "missing", "amd64")


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("ln -sf /proc/$$$$/root/models", "ln -sf /proc/$$/root/models"),
        ('[ "$$(ls -A /models)" ]', '[ "$(ls -A /models)" ]'),
        ("$(VAR) stays", "$(VAR) stays"),
    ],
)
def test_k8s_expand(text: str, expanded: str) -> None:
    assert k8s_expand(text) == expanded


def test_go_concat() -> None:
    expr = r'"echo \"a\" " + image + ": ok"'
    assert _go_concat(expr, {"image": "r/m:v1"}) == 'echo "a" r/m:v1: ok'


def test_crd_lists_every_param() -> None:
    """config/crd's ModelImagePush enumerates the param names; the new ones are there too."""
    crd = yaml.safe_load(
        (Path(__file__).resolve().parents[3] / "config/crd/modelimagepushes.yaml").read_text()
    )
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    names = schema["properties"]["spec"]["properties"]["params"]["items"]["properties"]["name"]["enum"]
    assert sorted(names) == sorted(PARAM_HELP)
