from typing import Any

import pytest

from controller.logic.params import ParamsError, raw_params, validate_params
from controller.model.customrun import CustomRun, raw_is_ours
from controller.model.params import PushParams, resolve_mode
from tests.unit.controller.helpers import run, run_dict

BASE = {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1"}


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ({}, "resolved_mode", "build"),
        ({"source": "docker://127.0.0.1:5000/a/b:1"}, "resolved_mode", "copy"),
        ({"mode": "buildah"}, "resolved_mode", "buildah"),
        ({"mode": "SKOPEO", "source": "docker://q.io/a/b:1"}, "resolved_mode", "skopeo"),
        ({"ephemeral-storage": "2Gi"}, "ephemeral_storage", 2 * 1024**3),
        ({"model-size": "48Gi"}, "model_size", 48 * 1024**3),
        ({"insecure-registries": "a:5000, b.io"}, "insecure_registries", ("a:5000", "b.io")),
        ({"insecure-registries": ["a:5000"]}, "insecure_registries", ("a:5000",)),
        ({"node-selector": '{"disk": "big"}'}, "node_selector", {"disk": "big"}),
        (
            {"tolerations": '[{"key": "k", "operator": "Exists"}]'},
            "tolerations",
            ({"key": "k", "operator": "Exists"},),
        ),
        ({"tls-verify": "false"}, "tls_verify", False),
        ({"registry-secret": "quay-creds"}, "registry_secret", "quay-creds"),
        ({"ca-bundle": " trusted-ca "}, "ca_bundle", "trusted-ca"),
        ({"ca-bundle": ""}, "ca_bundle", None),
        ({"mode": "buildah", "ca-bundle": "trusted-ca"}, "ca_bundle", "trusted-ca"),
        ({"image": "docker://127.0.0.1:5000/acme/m:v1"}, "image", "127.0.0.1:5000/acme/m:v1"),
        ({"base": "127.0.0.1:5000/base/img:1"}, "base", "127.0.0.1:5000/base/img:1"),
        ({"mode": "buildah", "containerfile": "Containerfile"}, "containerfile", "Containerfile"),
        ({"mode": "buildah", "storage": "ephemeral"}, "storage", "ephemeral"),
        ({"source": "dir:///workspace/model/"}, "source_path", "/workspace/model"),
    ],
)
def test_valid(extra: dict[str, Any], field: str, expected: Any) -> None:
    params = validate_params({**BASE, **extra})
    assert isinstance(params, PushParams), params
    assert getattr(params, field) == expected


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"mode": "fast"}, ["'mode'", "'fast'", "auto, build, copy, buildah, skopeo"]),
        ({"colour": "red"}, ["unknown param 'colour'", "'red'", "allowed params", "ephemeral-storage"]),
        ({"source": "s3://bucket/x"}, ["'source'", "s3://bucket/x", "dir://"]),
        ({"source": "dir://relative"}, ["'source'", "absolute"]),
        ({"source": "dir:///workspace/../etc"}, ["'source'", ".."]),
        ({"image": "not a ref"}, ["'image'", "'not a ref'", "host[:port]/repo"]),
        ({"ephemeral-storage": "lots"}, ["'ephemeral-storage'", "'lots'", "512Mi"]),
        ({"model-size": "0"}, ["'model-size'", "greater than zero"]),
        ({"registry-secret": "Bad_Name"}, ["'registry-secret'", "'Bad_Name'", "DNS-1123"]),
        ({"ca-bundle": "My_CA"}, ["'ca-bundle'", "'My_CA'", "ConfigMap name", "DNS-1123"]),
        ({"ca-bundle": ["a"]}, ["'ca-bundle'", "string"]),
        ({"insecure-registries": "a b/c"}, ["'insecure-registries'", "b/c"]),
        ({"node-selector": "{oops"}, ["'node-selector'", "JSON"]),
        ({"node-selector": '{"a": 1}'}, ["'node-selector'", "string label values"]),
        ({"tolerations": '[{"colour": "x"}]'}, ["'tolerations'", "colour"]),
        ({"tls-verify": "maybe"}, ["'tls-verify'", "'maybe'", "true or false"]),
        ({"mode": "copy"}, ["'mode'", "docker://"]),
        ({"mode": "skopeo"}, ["'mode'", "docker://"]),
        ({"source": "docker://q.io/a/b:1", "mode": "build"}, ["'mode'", "dir://"]),
        ({"source": "docker://q.io/a/b:1", "base": "q.io/x/y:1"}, ["'base'", "build and buildah"]),
        ({"containerfile": "Containerfile"}, ["'containerfile'", "buildah"]),
        ({"storage": "ephemeral"}, ["'storage'", "buildah and skopeo"]),
        ({"mode": "buildah", "storage": "ram"}, ["'storage'", "'ram'"]),
        ({"mode": "buildah", "containerfile": "../x"}, ["'containerfile'", ".."]),
    ],
)
def test_invalid(extra: dict[str, Any], needles: list[str]) -> None:
    result = validate_params({**BASE, **extra})
    assert isinstance(result, ParamsError)
    for needle in needles:
        assert needle in result.message, result.message


@pytest.mark.parametrize("missing", ["source", "image"])
def test_required(missing: str) -> None:
    raw = dict(BASE)
    del raw[missing]
    result = validate_params(raw)
    assert isinstance(result, ParamsError)
    assert f"param {missing!r} is required" in result.message


def test_array_value_for_string_param() -> None:
    result = validate_params({**BASE, "image": ["a", "b"]})
    assert isinstance(result, ParamsError)
    assert "'image'" in result.message and "string" in result.message


@pytest.mark.parametrize(
    ("mode", "source", "resolved"),
    [
        ("auto", "dir:///workspace/m", "build"),
        ("auto", "docker://q.io/a/b:1", "copy"),
        ("buildah", "dir:///workspace/m", "buildah"),
        ("copy", "docker://q.io/a/b:1", "copy"),
    ],
)
def test_resolve_mode(mode: str, source: str, resolved: str) -> None:
    assert resolve_mode(mode, source) == resolved


def test_defaults_then_params_override() -> None:
    r = run({"image": "127.0.0.1:5000/acme/m:v2"})
    merged = raw_params(r, {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1"})
    assert merged == {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v2"}


def test_custom_spec_embedded_defaults() -> None:
    body = run_dict({"image": "127.0.0.1:5000/acme/m:v2"})
    del body["spec"]["customRef"]
    body["spec"]["customSpec"] = {
        "apiVersion": "modelpush.dev/v1alpha1",
        "kind": "ModelImagePush",
        "spec": {
            "params": [
                {"name": "source", "value": "dir:///workspace/model"},
                {"name": "mode", "default": "build"},
            ]
        },
    }
    r = CustomRun.model_validate(body)
    assert r.is_ours and raw_is_ours(body)
    merged = raw_params(r, None)
    assert merged == {
        "source": "dir:///workspace/model",
        "mode": "build",
        "image": "127.0.0.1:5000/acme/m:v2",
    }


@pytest.mark.parametrize(
    ("spec", "ours"),
    [
        ({"customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"}}, True),
        ({"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"}}, False),
        ({"customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "Other"}}, False),
        (
            {"customSpec": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush", "spec": {}}},
            True,
        ),
        (
            {
                "customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"},
                "customSpec": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"},
            },
            False,
        ),
        ({}, False),
    ],
)
def test_filter(spec: dict[str, Any], ours: bool) -> None:
    body = {"metadata": {"name": "x"}, "spec": spec}
    assert raw_is_ours(body) is ours
    assert CustomRun.model_validate(body).is_ours is ours
