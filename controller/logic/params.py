"""Params of a run: defaults merged with the run's params, validated into `PushParams` or one error text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.model.customrun import CustomRun
from controller.model.params import FORMATS, MODES, PARAM_HELP, PushParams

ALLOWED = tuple(sorted(PARAM_HELP))


@dataclass(frozen=True)
class ParamsError:
    message: str


def raw_params(run: CustomRun, defaults: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults from a ModelImagePush object (customRef.name) or the embedded customSpec.spec, overridden
    by the run's own params."""
    merged: dict[str, Any] = {}
    if defaults:
        merged.update(defaults)
    if run.spec.custom_ref is None and run.spec.custom_spec is not None:
        merged.update(defaults_from_spec(run.spec.custom_spec.spec))
    for param in run.spec.params:
        merged[param.name] = param.value
    return merged


def defaults_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec.params: [{name, value}]` (also accepts `default` like a Tekton ParamSpec)."""
    out: dict[str, Any] = {}
    for item in spec.get("params") or []:
        if isinstance(item, dict) and "name" in item:
            out[str(item["name"])] = item.get("value", item.get("default"))
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def validate_params(raw: dict[str, Any]) -> PushParams | ParamsError:
    unknown = sorted(set(raw) - set(PARAM_HELP))
    problems: list[str] = [
        f"unknown param {name!r} (value {_show(raw[name])}); allowed params: {', '.join(ALLOWED)}"
        for name in unknown
    ]
    known = {k: v for k, v in raw.items() if k in PARAM_HELP}
    params: PushParams | None = None
    try:
        params = PushParams.model_validate(known)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            name = _alias(name)
            if err["type"] == "missing":
                problems.append(f"param {name!r} is required: {PARAM_HELP.get(name, '')}")
                continue
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "literal_error" and name == "mode":
                msg = f"must be one of {', '.join(MODES)}"
            if err["type"] == "literal_error" and name == "format":
                msg = f"must be one of {', '.join(FORMATS)}"
            shown = _show(raw.get(name))
            problems.append(f"param {name!r} has value {shown}: {msg} (allowed: {PARAM_HELP[name]})")
    if params is not None:
        problems.extend(_consistency(params))
    if problems:
        return ParamsError("Invalid params: " + "; ".join(problems))
    assert params is not None
    return params


def _alias(field_name: str) -> str:
    field = PushParams.model_fields.get(field_name)
    return field.alias if field is not None and field.alias else field_name


def _consistency(p: PushParams) -> list[str]:
    mode = p.resolved_mode
    from_dir = p.source.startswith("dir://")
    out = []
    if mode in ("build", "buildah") and not from_dir:
        out.append(f"param 'mode' has value {mode!r}: {mode} needs a dir:// source, got {p.source!r}")
    if mode in ("copy", "skopeo") and from_dir:
        out.append(f"param 'mode' has value {mode!r}: {mode} needs a docker:// source, got {p.source!r}")
    if mode in ("build", "buildah") and "@" in p.image:
        out.append(
            f"param 'image' has value {p.image!r}: a {mode} makes a new manifest, so its digest cannot be "
            "chosen; name a tag instead"
        )
    if p.base and mode not in ("build", "buildah"):
        out.append(f"param 'base' has value {p.base!r}: base only applies to the build and buildah modes")
    if p.containerfile and mode != "buildah":
        out.append(f"param 'containerfile' has value {p.containerfile!r}: only applies to the buildah mode")
    if p.image == "none":
        out.append("param 'image' has value 'none': give a destination image reference")
    # issue 12: the format and the model metadata are written by the native builder only
    build_only = {
        "format": p.format != "modelcar",
        "model-name": p.model_name,
        "model-version": p.model_version,
    }
    build_only |= {
        "model-family": p.model_family,
        "source-url": p.source_url,
        "source-revision": p.source_revision,
    }
    for name, given in build_only.items():
        if given and mode != "build":
            out.append(f"param {name!r}: only applies to the build mode (mode is {mode!r})")
    if p.format == "modelpack" and p.base and p.base != "none":
        out.append(f"param 'base' has value {p.base!r}: a ModelPack artifact has no base (use format both)")
    if p.storage and mode not in ("buildah", "skopeo"):
        out.append(f"param 'storage' has value {p.storage!r}: only applies to the buildah and skopeo modes")
    return out
