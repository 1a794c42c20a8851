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


def pipeline_run(name: str, tasks: list[Obj], *, workspace_claim: str | None = None, **spec: Any) -> Obj:
    """A PipelineRun with an embedded Pipeline; `workspace_claim` binds workspace `shared` to that PVC."""
    pipeline_spec: Obj = {"tasks": tasks}
    run_spec: Obj = {"pipelineSpec": pipeline_spec, **spec}
    if workspace_claim:
        pipeline_spec["workspaces"] = [{"name": "shared"}]
        run_spec["workspaces"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": workspace_claim}}]
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": run_spec,
    }


def push_and_copy(
    name: str, claim: str, model_dir: str, image: str, copy_image: str, insecure: str = ""
) -> Obj:
    """The demo shape: push `dir:///workspace/model/<model_dir>` from PVC `claim` to `image`, then a second
    custom task copies `$(tasks.push.results.IMAGE_URL)` to `copy_image`."""
    extra = {"insecure_registries": insecure} if insecure else {}
    ws = [{"name": "model", "workspace": "shared"}]
    tasks = [
        push_task(
            "push",
            params=params(source=f"dir:///workspace/model/{model_dir}", image=image, **extra),
            workspaces=ws,
        ),
        push_task(
            "copy",
            params=params(
                source="docker://$(tasks.push.results.IMAGE_URL)", image=copy_image, mode="copy", **extra
            ),
        ),
    ]
    return pipeline_run(name, tasks, workspace_claim=claim)
