"""Builders for `tekton.dev/v1` PipelineRuns that use the ModelImagePush custom task (tests and demo)."""

from __future__ import annotations

from typing import Any

CUSTOM_TASK = {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"}

Obj = dict[str, Any]


def params(**values: str) -> list[Obj]:
    """Tekton params from keyword arguments; `_` becomes `-` (insecure_registries -> insecure-registries)."""
    return [{"name": k.replace("_", "-"), "value": v} for k, v in values.items()]


def push_task(name: str, *, embedded: bool = False, spec: Obj | None = None, **task: Any) -> Obj:
    """A pipeline task running our custom task, by reference (`taskRef`) or embedded (`taskSpec`)."""
    out: Obj = {"name": name, **task}
    if embedded:
        out["taskSpec"] = {**CUSTOM_TASK, "spec": spec or {}}
    else:
        out["taskRef"] = dict(CUSTOM_TASK)
    return out


def claim_template(size: str = "1Gi") -> Obj:
    """A workspace binding to a fresh ReadWriteOnce PVC per PipelineRun (the default StorageClass)."""
    return {
        "volumeClaimTemplate": {
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
        }
    }


def pipeline_run(name: str, tasks: list[Obj], *, workspace: Obj | None = None, **spec: Any) -> Obj:
    """A PipelineRun with an embedded Pipeline; `workspace` (e.g. `claim_template()`) binds its workspace
    `shared`."""
    pipeline_spec: Obj = {"tasks": tasks}
    run_spec: Obj = {"pipelineSpec": pipeline_spec, **spec}
    if workspace:
        pipeline_spec["workspaces"] = [{"name": "shared"}]
        run_spec["workspaces"] = [{"name": "shared", **workspace}]
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": run_spec,
    }
