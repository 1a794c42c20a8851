"""Pydantic view of a Tekton CustomRun (tekton.dev/v1beta1), only the fields the controller uses.

Unknown fields are kept (extra="allow") so nothing is lost when a view is dumped back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

API_GROUP = "modelpush.dev"
API_VERSION = "modelpush.dev/v1alpha1"
KIND = "ModelImagePush"
CUSTOMRUN_API_VERSION = "tekton.dev/v1beta1"
CUSTOMRUN_KIND = "CustomRun"
CANCELLED = "RunCancelled"


class _View(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ObjectMeta(_View):
    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Ref(_View):
    api_version: str = Field(default="", alias="apiVersion")
    kind: str = ""
    name: str | None = None


class EmbeddedSpec(_View):
    api_version: str = Field(default="", alias="apiVersion")
    kind: str = ""
    spec: dict[str, Any] = Field(default_factory=dict)


class Param(_View):
    name: str
    value: Any = None


class PvcSource(_View):
    claim_name: str = Field(alias="claimName")
    read_only: bool = Field(default=False, alias="readOnly")


class WorkspaceBinding(_View):
    name: str
    sub_path: str | None = Field(default=None, alias="subPath")
    persistent_volume_claim: PvcSource | None = Field(default=None, alias="persistentVolumeClaim")


class CustomRunSpec(_View):
    custom_ref: Ref | None = Field(default=None, alias="customRef")
    custom_spec: EmbeddedSpec | None = Field(default=None, alias="customSpec")
    params: list[Param] = Field(default_factory=list)
    status: str | None = None
    status_message: str | None = Field(default=None, alias="statusMessage")
    timeout: str | None = None
    retries: int = 0
    service_account_name: str | None = Field(default=None, alias="serviceAccountName")
    workspaces: list[WorkspaceBinding] = Field(default_factory=list)


class Condition(_View):
    type: str = "Succeeded"
    status: str = "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")


class Result(_View):
    name: str
    value: str


class CustomRunStatus(_View):
    conditions: list[Condition] = Field(default_factory=list)
    start_time: str | None = Field(default=None, alias="startTime")
    completion_time: str | None = Field(default=None, alias="completionTime")
    results: list[Result] = Field(default_factory=list)
    retries_status: list[dict[str, Any]] = Field(default_factory=list, alias="retriesStatus")
    extra_fields: dict[str, Any] = Field(default_factory=dict, alias="extraFields")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")

    @property
    def succeeded(self) -> Condition | None:
        for cond in self.conditions:
            if cond.type == "Succeeded":
                return cond
        return None

    @property
    def done(self) -> bool:
        cond = self.succeeded
        return cond is not None and cond.status in ("True", "False")


class CustomRun(_View):
    api_version: str = Field(default=CUSTOMRUN_API_VERSION, alias="apiVersion")
    kind: str = CUSTOMRUN_KIND
    metadata: ObjectMeta
    spec: CustomRunSpec = Field(default_factory=CustomRunSpec)
    status: CustomRunStatus = Field(default_factory=CustomRunStatus)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def is_ours(self) -> bool:
        return is_ours(self.spec)


def is_ours(spec: CustomRunSpec) -> bool:
    """customRef decides; customSpec only when customRef is absent (Tekton's rule)."""
    if spec.custom_ref is not None:
        return spec.custom_ref.api_version == API_VERSION and spec.custom_ref.kind == KIND
    if spec.custom_spec is not None:
        return spec.custom_spec.api_version == API_VERSION and spec.custom_spec.kind == KIND
    return False


def raw_is_ours(obj: dict[str, Any]) -> bool:
    """Cheap filter on a raw CustomRun dict (used by the watch before building a view, and for runs whose
    view cannot be built: so it must not trust any field's shape)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return False
    ref = spec.get("customRef")
    if ref:
        return isinstance(ref, dict) and ref.get("apiVersion") == API_VERSION and ref.get("kind") == KIND
    embedded = spec.get("customSpec")
    if embedded:
        return (
            isinstance(embedded, dict)
            and embedded.get("apiVersion") == API_VERSION
            and embedded.get("kind") == KIND
        )
    return False


MAX_PROBLEMS = 5


def problems(err: ValidationError) -> list[str]:
    """What is wrong with a CustomRun, one phrase per field, e.g. `spec.params[0].name: Field required`.
    The offending values are left out: a param value may hold anything, credentials included."""
    out = []
    for e in err.errors(include_url=False, include_input=False)[:MAX_PROBLEMS]:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in e["loc"])
        out.append(f"{where.lstrip('.') or 'the object'}: {e['msg']}")
    return out
