"""The ModelImagePush params, validated once with pydantic.

Every validator raises ValueError with a message that says what is allowed; `logic.params` turns
pydantic's errors into one `InvalidParams` message naming the param and the value.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from controller.model.quantity import parse_quantity

Mode = Literal["auto", "build", "copy", "buildah", "skopeo"]
Storage = Literal["workspace", "ephemeral"]
Format = Literal["modelcar", "modelpack", "both"]
FORMATS = ("modelcar", "modelpack", "both")
MODES = ("auto", "build", "copy", "buildah", "skopeo")

# host[:port]/path[:tag][@digest]; the host part must contain a dot or colon or be localhost (like docker)
_REF = re.compile(
    r"^(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?)/(?P<path>[a-z0-9]+(?:[._/-]+[a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_HOSTPORT = re.compile(r"^[a-zA-Z0-9.-]+(:[0-9]{1,5})?$")
RegistryAuth = Literal["auto", "serviceaccount", "secret"]
_UPLOAD = r"(?:streamed|monolithic|chunked:[0-9]+(?:[KMG]i?)?)"
_UPLOAD_ITEM = re.compile(rf"^(?:(?P<host>[a-zA-Z0-9.-]+(?::[0-9]{{1,5}})?)=)?(?P<strategy>{_UPLOAD})$")
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}

PARAM_HELP: dict[str, str] = {
    "source": "dir://<absolute path inside a workspace, e.g. /workspace/model> or docker://<image reference>",
    "image": "the destination image reference host[:port]/repo[:tag], e.g. quay.io/acme/model:v1",
    "mode": "one of auto, build, copy, buildah, skopeo",
    "base": "none (model files only), or a base image reference host[:port]/repo[:tag] (build and buildah "
    "modes; build without it adds a static busybox layer so KServe can run the image)",
    "containerfile": "a path to a Containerfile inside the context directory (buildah mode only)",
    "ephemeral-storage": "a Kubernetes quantity such as 512Mi or 20Gi",
    "model-size": "a Kubernetes quantity such as 48Gi (the model's size, used to size buildah/skopeo pods)",
    "registry-secret": "the name of a kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg Secret in "
    "the CustomRun's namespace",
    "registry-auth": "auto (the ServiceAccount token for OpenShift's internal registry, Secrets elsewhere), "
    "serviceaccount (the ServiceAccount token for every registry of the run) or secret (Secrets only)",
    "upload": "streamed, chunked:<size> or monolithic, for every registry, or per host: "
    "host[:port]=<strategy>, comma-separated, e.g. ghcr.io=chunked:4Mi",
    "ca-bundle": "the name of a ConfigMap in the CustomRun's namespace with PEM CA certificates under key "
    "ca-bundle.crt or ca.crt",
    "insecure-registries": "registry hosts host[:port], comma-separated or an array",
    "node-selector": 'a JSON object of node labels, e.g. {"disk": "large"}',
    "tolerations": 'a JSON array of pod tolerations, e.g. [{"key": "k", "operator": "Exists"}]',
    "tls-verify": "true or false",
    "storage": "workspace (buildah/skopeo storage on the workspace PVC) or ephemeral (pod-local storage)",
    # issue 12 (kserve-modelpack): output format and image metadata, build mode only
    "format": "modelcar (an image), modelpack (a CNCF ModelPack artifact) or both (one index holding both)",
    "model-name": "the model's name, e.g. mistral-small-24b (annotations, ModelPack descriptor)",
    "model-version": "the model's version, e.g. 2501",
    "model-family": "the model's family, e.g. mistral (default: model_type from config.json)",
    "source-url": "where the model comes from, e.g. https://huggingface.co/org/model (image.source)",
    "source-revision": "the model's source revision, e.g. a commit (image.revision)",
    "sign": "true or false (sign the pushed image and attach SLSA provenance with the cluster's cosign key)",
}


def _strip_docker(value: str) -> str:
    return value[len("docker://") :] if value.startswith("docker://") else value


def check_image_ref(value: str) -> str:
    ref = _strip_docker(value.strip())
    if not _REF.match(ref):
        raise ValueError("must be an image reference host[:port]/repo[:tag] or ...@sha256:<digest>")
    return ref


def is_object_name(value: str) -> bool:
    """A lower-case DNS-1123 name, as Secrets and ConfigMaps have."""
    return bool(_DNS1123.match(value))


def ref_host(ref: str) -> str:
    return _strip_docker(ref).split("/", 1)[0]


def _items(value: Any) -> tuple[str, ...]:
    """A list param given as an array or as comma/space separated text."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else re.split(r"[,\s]+", _as_text(value))
    return tuple(str(item).strip() for item in items if str(item).strip())


def _chunk(strategy: str) -> int:
    return parse_quantity(strategy.split(":", 1)[1])


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("must be a string")


class PushParams(BaseModel):
    """Validated params of one run; field aliases are the Tekton param names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    source: str
    image: str
    mode: Mode = "auto"
    base: str | None = None
    containerfile: str | None = None
    ephemeral_storage: int | None = Field(default=None, alias="ephemeral-storage")
    model_size: int | None = Field(default=None, alias="model-size")
    registry_secret: str | None = Field(default=None, alias="registry-secret")
    registry_auth: RegistryAuth = Field(default="auto", alias="registry-auth")
    upload: tuple[str, ...] = ()  # "strategy" (every registry) or "host=strategy" items
    ca_bundle: str | None = Field(default=None, alias="ca-bundle")
    insecure_registries: tuple[str, ...] = Field(default=(), alias="insecure-registries")
    node_selector: dict[str, str] = Field(default_factory=dict, alias="node-selector")
    tolerations: tuple[dict[str, Any], ...] = ()
    tls_verify: bool = Field(default=True, alias="tls-verify")
    storage: Storage | None = None
    format: Format = "modelcar"
    model_name: str | None = Field(default=None, alias="model-name")
    model_version: str | None = Field(default=None, alias="model-version")
    model_family: str | None = Field(default=None, alias="model-family")
    source_url: str | None = Field(default=None, alias="source-url")
    source_revision: str | None = Field(default=None, alias="source-revision")
    sign: bool | None = None  # None: the SIGN_ALL setting decides (issue 13)

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> str:
        text = _as_text(value).strip()
        if text.startswith("dir://"):
            path = text[len("dir://") :]
            if not path.startswith("/"):
                raise ValueError("dir:// needs an absolute path, e.g. dir:///workspace/model")
            if any(part == ".." for part in path.split("/")):
                raise ValueError("dir:// path must not contain '..'")
            return "dir://" + path.rstrip("/") if path != "/" else text
        if text.startswith("docker://"):
            check_image_ref(text)
            return text
        raise ValueError("must start with dir:// (model files in a workspace) or docker:// (an image)")

    @field_validator("image", "base", mode="before")
    @classmethod
    def _ref(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if value == "none":  # base: none, a bare image (the ref pattern cannot match it)
            return "none"
        return check_image_ref(_as_text(value))

    @field_validator("upload", mode="before")
    @classmethod
    def _upload(cls, value: Any) -> tuple[str, ...]:
        out = _items(value)
        for item in out:
            m = _UPLOAD_ITEM.match(item)
            if not m or (m.group("strategy").startswith("chunked:") and _chunk(m.group("strategy")) <= 0):
                raise ValueError(
                    f"{item!r}: expected streamed, chunked:<size> (e.g. chunked:4Mi) or monolithic, "
                    "optionally after host[:port]="
                )
        return out

    @field_validator("registry_auth", mode="before")
    @classmethod
    def _registry_auth(cls, value: Any) -> str:
        return _as_text(value).strip().lower() or "auto"

    @field_validator(
        "model_name", "model_version", "model_family", "source_url", "source_revision", mode="before"
    )
    @classmethod
    def _label(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        text = _as_text(value).strip()
        if len(text) > 256 or any(ord(c) < 32 for c in text):
            raise ValueError("must be one line of at most 256 characters")
        return text

    @field_validator("mode", "storage", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if value == "":
            return None
        return _as_text(value).strip().lower()

    @field_validator("containerfile", mode="before")
    @classmethod
    def _containerfile(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None
        text = _as_text(value).strip()
        if any(part == ".." for part in text.split("/")):
            raise ValueError("must stay inside the context directory (no '..')")
        return text

    @field_validator("ephemeral_storage", "model_size", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> int | None:
        if value is None or value == "":
            return None
        size = parse_quantity(_as_text(value))
        if size <= 0:
            raise ValueError("must be greater than zero")
        return size

    @field_validator("registry_secret", "ca_bundle", mode="before")
    @classmethod
    def _object_name(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        text = _as_text(value).strip()
        if not is_object_name(text):
            kind = "ConfigMap" if info.field_name == "ca_bundle" else "Secret"
            raise ValueError(f"must be a {kind} name (lower-case DNS-1123)")
        return text

    @field_validator("insecure_registries", mode="before")
    @classmethod
    def _insecure(cls, value: Any) -> tuple[str, ...]:
        hosts = _items(value)
        for host in hosts:
            if not _HOSTPORT.match(host):
                raise ValueError(f"{host!r} is not host[:port]")
        return hosts

    @field_validator("node_selector", mode="before")
    @classmethod
    def _node_selector(cls, value: Any) -> dict[str, str]:
        if value is None or value == "":
            return {}
        data = _json(value)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("must be a JSON object of string label values")
        return data

    @field_validator("tolerations", mode="before")
    @classmethod
    def _tolerations(cls, value: Any) -> tuple[dict[str, Any], ...]:
        if value is None or value == "":
            return ()
        data = _json(value)
        if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
            raise ValueError("must be a JSON array of toleration objects")
        for tol in data:
            unknown = set(tol) - _TOLERATION_KEYS
            if unknown:
                allowed = sorted(_TOLERATION_KEYS)
                raise ValueError(f"unknown toleration field(s) {sorted(unknown)}; allowed {allowed}")
        return tuple(data)

    @field_validator("tls_verify", "sign", mode="before")
    @classmethod
    def _bool(cls, value: Any, info: ValidationInfo) -> bool | None:
        if info.field_name == "sign" and (value is None or value == ""):
            return None
        if isinstance(value, bool):
            return value
        text = _as_text(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError("must be true or false")

    @property
    def resolved_mode(self) -> str:
        return resolve_mode(self.mode, self.source)

    @property
    def source_path(self) -> str | None:
        return self.source[len("dir://") :] if self.source.startswith("dir://") else None

    @property
    def source_ref(self) -> str | None:
        return _strip_docker(self.source) if self.source.startswith("docker://") else None


def resolve_mode(mode: str, source: str) -> str:
    """auto picks the native mode that fits the source: dir:// builds, docker:// copies."""
    if mode != "auto":
        return mode
    return "build" if source.startswith("dir://") else "copy"


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
