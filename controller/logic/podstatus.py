"""Readers of a work pod's status and spec (pure): what the container did, is doing or is stuck on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controller.logic.pod import CONTAINER
from controller.logic.status import parse_ts
from controller.model.customrun import CustomRun
from controller.model.quantity import parse_quantity
from controller.model.reasons import Reason

# container waiting reasons that never heal by themselves, and those the kubelet retries (with a grace)
FATAL_WAITING = {"InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
PULL_WAITING = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}


def _container_status(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return cs
    return {}


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    cs = _container_status(pod)
    return ((cs.get("state") or {}).get("terminated")) or (
        (cs.get("lastState") or {}).get("terminated") or {}
    )


def running_since(pod: dict[str, Any]) -> datetime | None:
    """When the push container started running (None while it does not run)."""
    return parse_ts(((_container_status(pod).get("state") or {}).get("running") or {}).get("startedAt"))


def waiting(pod: dict[str, Any]) -> dict[str, Any]:
    return (_container_status(pod).get("state") or {}).get("waiting") or {}


def stuck_reason(
    pod: dict[str, Any], waiting_state: dict[str, Any], now: datetime, pull_grace: float
) -> Reason | None:
    reason = waiting_state.get("reason")
    if reason in FATAL_WAITING:
        return Reason.POD_FAILED
    if reason in PULL_WAITING:
        created = parse_ts((pod.get("metadata") or {}).get("creationTimestamp"))
        if created is not None and (now - created).total_seconds() >= pull_grace:
            return Reason.IMAGE_PULL_FAILED
    return None


def requested_storage(pod: dict[str, Any]) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == CONTAINER:
            value = ((c.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
            if value:
                try:
                    return parse_quantity(str(value))
                except ValueError:
                    return None
    return None


def owned_by(pod: dict[str, Any], run: CustomRun) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    if not run.metadata.uid:
        return True
    return any(r.get("uid") == run.metadata.uid for r in refs)


def pod_done(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def disruption_target(pod: dict[str, Any]) -> str | None:
    """`reason: message` of the pod's DisruptionTarget condition (set when the API server, scheduler or
    taint manager ends a pod), or None."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            return f"{c.get('reason') or 'Disrupted'}: {c.get('message') or 'no message'}"
    return None
