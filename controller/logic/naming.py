"""Deterministic names and labels for work pods."""

from __future__ import annotations

import hashlib
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "model-image-push"
LABEL_RUN = "modelpush.dev/customrun"
LABEL_ATTEMPT = "modelpush.dev/attempt"
LABEL_MODE = "modelpush.dev/mode"
MAX_NAME = 63


def pod_name(run_name: str, attempt: int) -> str:
    """`<run>-push-<attempt>`; when that passes 63 characters the run name is cut and an 8-hex hash of the
    full name keeps it unique. Same inputs, same name: a restarted controller finds the pod it made."""
    suffix = f"-push-{attempt}"
    name = run_name + suffix
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:8]
    head = run_name[: MAX_NAME - len(suffix) - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}{suffix}"


def label_value(text: str) -> str:
    """Label values are capped at 63 characters; long run names keep a hash to stay unique."""
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: MAX_NAME - 9].rstrip('-._')}-{digest}"


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controlling ownerReference of what a run owns (its pods, its per-run Secret)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
