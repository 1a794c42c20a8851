"""Controller settings: environment (prefix MODELPUSH_) over an optional YAML/JSON file over defaults.

The file (a mounted ConfigMap) is named by MODELPUSH_CONFIG_FILE or `--config`; its keys are the field
names below (snake_case). Sizes are Kubernetes quantities.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from controller.model.quantity import parse_quantity

DEFAULT_WORK_IMAGE = "quay.io/modelpush/model-image-push:latest"


class _FileSource(PydanticBaseSettingsSource):
    """Reads the optional settings file; lower priority than the environment."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("MODELPUSH_CONFIG_FILE", "")
        self._data: dict[str, Any] = {}
        if path:
            text = Path(path).read_text()
            data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
            self._data = {str(k).replace("-", "_"): v for k, v in (data or {}).items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def _split(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]
    return list(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELPUSH_", extra="ignore")

    # where to work
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)  # empty: all namespaces
    kubeconfig: str | None = None  # else $KUBECONFIG, else in-cluster
    # work pods
    work_image: str = DEFAULT_WORK_IMAGE
    image_pull_policy: str = "IfNotPresent"
    pod_service_account: str | None = None  # else the CustomRun's serviceAccountName, else default
    insecure_registries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # upload strategy per registry host (param `upload` overrides): GHCR caps a request at 4 MiB
    upload_strategies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ghcr.io=chunked:4Mi"])
    allow_privileged_buildah: bool = False
    run_as_user: int | None = None  # None: the image's USER (OpenShift assigns one from the namespace range)
    # sizing policy (quantities)
    native_ephemeral_storage: int = parse_quantity("256Mi")
    native_cpu_request: str = "100m"
    native_cpu_limit: str = "2"
    native_memory_request: str = "256Mi"
    native_memory_limit: str = "1Gi"
    compat_storage_ratio: float = 2.5
    compat_storage_floor: int = parse_quantity("1Gi")
    compat_storage_ceiling: int = parse_quantity("200Gi")
    compat_cpu_request: str = "500m"
    compat_cpu_limit: str = "2"
    compat_memory_request: str = "512Mi"
    compat_memory_limit: str = "2Gi"
    # failure handling
    retry_on_eviction: bool = True
    eviction_retries: int = 1
    eviction_growth: float = 1.5
    retry_delay_seconds: float = 0.0
    default_timeout_seconds: float = 3600.0  # Tekton: nil timeout means 60 minutes
    image_pull_grace_seconds: float = 300.0  # ErrImagePull/ImagePullBackOff this long fails the attempt
    # a named Secret/CA ConfigMap may appear this long after the run (created by the same apply)
    missing_object_grace_seconds: float = 60.0
    keep_finished_pods: int | None = None  # finished attempt pods kept per run (None: all)
    progress_interval_seconds: float = 10.0  # extraFields.progress from the pod log this often; 0: off
    # signing (cosign key Secret in Tekton Chains' layout; see controller/logic/signing.py)
    sign_all: bool = False  # sign every run unless its param `sign` is false
    signing_secret_name: str = "signing-secrets"
    signing_secret_namespace: str = ""  # empty: the controller's namespace (LEASE_NAMESPACE)
    require_signature: bool = True  # a push whose signing failed fails the run (SigningFailed)
    signature_storage: Literal["tag", "referrers", "both"] = "tag"
    rekor_url: str | None = None  # also log signatures in this Rekor (untested: no log reachable here)
    # process
    max_concurrent_reconciles: int = 8
    resync_seconds: float = 300.0
    watch_timeout_seconds: int = 300
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    log_level: str = "INFO"
    # leader election
    leader_election: bool = True
    lease_name: str = "model-image-push-controller"
    lease_namespace: str = "default"
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    @field_validator("namespaces", "insecure_registries", "upload_strategies", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> list[str]:
        return _split(value)

    @field_validator("run_as_user", "keep_finished_pods", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        # an empty value (e.g. `RUN_AS_USER=` in a ConfigMap) means unset, not a parse error
        return None if value == "" else value

    @field_validator(
        "native_ephemeral_storage", "compat_storage_floor", "compat_storage_ceiling", mode="before"
    )
    @classmethod
    def _quantities(cls, value: Any) -> int:
        return parse_quantity(value) if isinstance(value, str) else int(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))
