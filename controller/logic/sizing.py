"""Sizing policy: the ephemeral-storage (and cpu/memory) a work pod asks for."""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.model.params import PushParams
from controller.model.quantity import round_up_mi
from controller.settings import Settings

NATIVE_MODES = ("build", "copy")


@dataclass(frozen=True)
class Resources:
    ephemeral_storage: int
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


def ephemeral_storage(params: PushParams, mode: str, settings: Settings, override: int | None = None) -> int:
    """Order: a size chosen after an eviction, then the explicit param, then the policy: native modes a
    small fixed amount (they stage nothing); buildah/skopeo ratio × model size within floor..ceiling."""
    if override:
        return override
    if params.ephemeral_storage:
        return params.ephemeral_storage
    if mode in NATIVE_MODES:
        return settings.native_ephemeral_storage
    if params.model_size is None:
        return settings.compat_storage_floor
    wanted = round_up_mi(math.ceil(params.model_size * settings.compat_storage_ratio))
    return max(settings.compat_storage_floor, min(settings.compat_storage_ceiling, wanted))


def resources(params: PushParams, mode: str, settings: Settings, override: int | None = None) -> Resources:
    storage = ephemeral_storage(params, mode, settings, override)
    if mode in NATIVE_MODES:
        return Resources(
            storage,
            settings.native_cpu_request,
            settings.native_cpu_limit,
            settings.native_memory_request,
            settings.native_memory_limit,
        )
    return Resources(
        storage,
        settings.compat_cpu_request,
        settings.compat_cpu_limit,
        settings.compat_memory_request,
        settings.compat_memory_limit,
    )
