"""ModelPack (CNCF model-spec v0.0.7) documents, pure: layer media types, the model config, the manifest.

The ModelPack manifest reuses the modelcar build's layer blobs byte for byte (uncompressed tars whose
entries sit under `models/`), so pushing both formats uploads each file once; only the two configs
differ. `org.cncf.model.filepath` therefore names the entry path inside the tar (`models/<path>`),
which is also where `modctl extract` writes it.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any, Literal

from .metadata import ImageMeta, iso_time
from .result import dumps_canonical
from .tarlayer import PREFIX, Entry, normalise_mode

ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
FILEPATH = "org.cncf.model.filepath"
FILE_METADATA = "org.cncf.model.file.metadata+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

Kind = Literal["weight", "weight.config", "doc", "code"]

# Suffixes by kind, after the patterns modctl uses when it builds (the same files land in the same kind).
_WEIGHT = (
    ".safetensors .bin .pt .pth .pt2 .mar .tflite .h5 .hdf5 .pb .gguf .ggml .ckpt .onnx .msgpack .pkl "
    ".pickle .keras .joblib .npy .npz .ot .engine .trt .mlmodel .tensor .weights .model"
).split()
_WEIGHT_INFIX = (".bin.", ".gguf.", ".onnx_data", ".data-")
_CONFIG = ".json .jsonl .json5 .yaml .yml .toml .ini .cfg .conf .config .tiktoken .txt .vocab".split()
_DOC = ".md .rst .pdf .html .htm .license .licence .notice .modelcard".split()
_DOC_NAMES = {"license", "licence", "notice", "readme", "copying", "authors", "citation.cff"}
# The config's `format`: named by the first weight file's suffix (in path order).
_FORMATS = {
    ".safetensors": "safetensors",
    ".gguf": "gguf",
    ".onnx": "onnx",
    ".bin": "pytorch",
    ".pt": "pytorch",
}


def layer_kind(relpath: str) -> Kind:
    """weight, weight.config, doc or code, from the file's name (everything unrecognised is code)."""
    name = PurePosixPath(relpath).name.lower()
    suffix = PurePosixPath(name).suffix
    if name.split(".")[0] in _DOC_NAMES or suffix in _DOC:
        return "doc"
    if "tokenizer.model" in name:
        return "weight.config"
    if suffix in _WEIGHT or any(part in name for part in _WEIGHT_INFIX):
        return "weight"
    if suffix in _CONFIG or name.startswith("merges") or name.startswith("vocab"):
        return "weight.config"
    return "code"


def layer_media_type(kind: Kind) -> str:
    return f"application/vnd.cncf.model.{kind}.v1.tar"


def file_metadata(entry: Entry, mode: int, mtime: int) -> str:
    """`org.cncf.model.file.metadata+json`: the tar header's fields, as model-spec's FileMetadata."""
    typeflag = {"file": ord("0"), "symlink": ord("2"), "dir": ord("5")}[entry.kind]
    doc = {
        "name": f"{PREFIX}/{entry.relpath}",
        "mode": mode,
        "uid": 0,
        "gid": 0,
        "size": entry.size if entry.kind == "file" else 0,
        "mtime": iso_time(mtime),
        "typeflag": typeflag,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def layer_annotations(group: list[Entry], modes: list[int], mtime: int) -> tuple[Kind, dict[str, str]]:
    """Kind and annotations of one layer. A layer of several small files takes the most common kind and
    names the models directory as its path (it holds many files)."""
    if len(group) == 1:
        e = group[0]
        return layer_kind(e.relpath), {
            FILEPATH: f"{PREFIX}/{e.relpath}",
            FILE_METADATA: file_metadata(e, modes[0], mtime),
        }
    kinds = [layer_kind(e.relpath) for e in group]
    kind = max(sorted(set(kinds)), key=kinds.count)
    return kind, {FILEPATH: PREFIX}


def pack_layer_descriptors(
    groups: list[list[Entry]], sizes: list[int], digests: list[str], mtime: int
) -> list[dict]:
    """The ModelPack layer descriptors of the modelcar's model layers (one per group of entries)."""
    out = []
    for group, size, digest in zip(groups, sizes, digests, strict=True):
        modes = [normalise_mode(e.mode, e.kind) for e in group]
        kind, notes = layer_annotations(group, modes, mtime)
        out.append(
            {"mediaType": layer_media_type(kind), "digest": digest, "size": size, "annotations": notes}
        )
    return out


def weight_format(relpaths: list[str]) -> str | None:
    for path in sorted(relpaths):
        fmt = _FORMATS.get(PurePosixPath(path).suffix.lower())
        if fmt:
            return fmt
    return None


def hf_fields(hf_config: dict[str, Any] | None) -> dict[str, str]:
    """architecture, precision and family from a Hugging Face config.json, when it has them."""
    if not hf_config:
        return {}
    out: dict[str, str] = {}
    archs = hf_config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        out["architecture"] = archs[0]
    dtype = hf_config.get("torch_dtype") or hf_config.get("dtype")
    if isinstance(dtype, str):
        out["precision"] = dtype
    if isinstance(hf_config.get("model_type"), str):
        out["family"] = hf_config["model_type"]
    return out


def make_model_config(
    diff_ids: list[str],
    meta: ImageMeta,
    epoch: int,
    hf: dict[str, str],
    fmt: str | None,
) -> dict[str, Any]:
    """The `application/vnd.cncf.model.config.v1+json` document (valid against schema/config-schema.json)."""
    descriptor = {
        "createdAt": iso_time(epoch),
        "name": meta.name,
        "version": meta.version,
        "family": meta.family or hf.get("family"),
        "sourceURL": meta.source_url,
        "revision": meta.revision,
        "title": meta.name,
    }
    config = {"architecture": hf.get("architecture"), "precision": hf.get("precision"), "format": fmt}
    return {
        "descriptor": {k: v for k, v in descriptor.items() if v},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
        "config": {k: v for k, v in config.items() if v},
    }


def make_model_manifest(config: bytes, config_digest: str, layers: list[dict], annotations: dict) -> bytes:
    return dumps_canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
            "layers": layers,
            "annotations": annotations,
        }
    )


def make_index(modelcar: dict, modelpack: dict, annotations: dict) -> bytes:
    """An OCI index holding the modelcar image (with its platform, so runtimes pick it) and the ModelPack
    manifest (with its artifactType and no platform, so runtimes skip it and model tools find it)."""
    return dumps_canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [modelcar, modelpack],
            "annotations": annotations,
        }
    )
