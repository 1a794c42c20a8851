"""The Pipelines' TaskRuns around our custom task: `write-model` (a step on the step image) writes a small
model into the PipelineRun's `volumeClaimTemplate` workspace, with its sha256 list beside it; `pull` is the
demo's TaskRun that copies `$(tasks.push.results.IMAGE_URL)` with skopeo, unpacks it and checks every file
against that list (hack/demo/pipelines.py)."""

from __future__ import annotations

from typing import Any

from hack.demo.pipelines import SUMS, pull_task
from hack.tekton.pipelines import claim_template, params, pipeline_run, push_task

__all__ = ["MODEL_FILES", "SOURCE", "WS", "model_pipeline", "model_push", "pull_task", "write_task"]

MODEL_DIR = "mistral"
SOURCE = f"dir:///workspace/model/{MODEL_DIR}"
WS = [{"name": "model", "workspace": "shared"}]
# path -> text, or None for 3 MiB of random bytes
MODEL_FILES: dict[str, str | None] = {
    "config.json": '{"architectures": ["MistralForCausalLM"]}',
    "tokenizer.json": '{"version": "1.0"}',
    "weights/model-00001.safetensors": None,
}
Obj = dict[str, Any]


def write_script() -> str:
    lines = ["set -eu", f'dir="$(workspaces.model.path)/{MODEL_DIR}"', 'mkdir -p "$dir/weights"', 'cd "$dir"']
    for path, text in MODEL_FILES.items():
        lines.append(
            f"printf '%s\\n' '{text}' > {path}" if text else f"head -c 3145728 /dev/urandom > {path}"
        )
    # relative paths, so the pull task can check them where it unpacked the image's /models
    lines.append(
        f'find . -type f | sed "s|^./||" | sort | xargs sha256sum > "$(workspaces.model.path)/{SUMS}"'
    )
    return "\n".join(lines) + "\n"


def write_task(step_image: str) -> Obj:
    return {
        "name": "write-model",
        "workspaces": WS,
        "taskSpec": {
            "workspaces": [{"name": "model"}],
            "steps": [{"name": "write", "image": step_image, "script": write_script()}],
        },
    }


def model_push(registry: str, image: str, name: str = "push", **task: Any) -> Obj:
    """Pipeline task `push`, after `write-model`: the workspace's model to `registry/image` (plain HTTP)."""
    return push_task(
        name,
        params=params(source=SOURCE, image=f"{registry}/{image}", insecure_registries=registry),
        workspaces=WS,
        runAfter=["write-model"],
        **task,
    )


def model_pipeline(name: str, step_image: str, *tasks: Obj, **spec: Any) -> Obj:
    """write-model, then `tasks`, on a fresh `volumeClaimTemplate` workspace."""
    return pipeline_run(name, [write_task(step_image), *tasks], workspace=claim_template(), **spec)
