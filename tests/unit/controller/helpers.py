"""Builders for CustomRun and Pod dicts used by the controller unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.model.customrun import CustomRun

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def run_dict(
    params: dict[str, Any] | None = None,
    name: str = "push-1",
    workspaces: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    params = (
        {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1"}
        if params is None
        else params
    )
    body: dict[str, Any] = {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": name, "namespace": "ns1", "uid": "uid-1", "resourceVersion": "7"},
        "spec": {
            "customRef": {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"},
            "params": [{"name": k, "value": v} for k, v in params.items()],
            "workspaces": workspaces
            if workspaces is not None
            else [{"name": "model", "persistentVolumeClaim": {"claimName": "model-pvc"}}],
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def run(params: dict[str, Any] | None = None, **kw: Any) -> CustomRun:
    return CustomRun.model_validate(run_dict(params, **kw))


def pod(phase: str, name: str = "push-1-push-1", uid: str = "uid-1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns1", "ownerReferences": [{"uid": uid, "controller": True}]},
        "spec": {
            "nodeName": "local-node-1",
            "containers": [{"name": "push", "resources": {"limits": {"ephemeral-storage": "64Mi"}}}],
        },
        "status": {"phase": phase, **status},
    }


def terminated(exit_code: int, message: str) -> dict[str, Any]:
    return {
        "containerStatuses": [
            {"name": "push", "state": {"terminated": {"exitCode": exit_code, "message": message}}}
        ]
    }
