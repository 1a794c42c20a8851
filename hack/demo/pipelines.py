"""The demo's PipelineRuns, written the way users write them: TaskRuns around the ModelImagePush task.

`write-model` (a TaskRun on the step image) puts a synthetic model into a `volumeClaimTemplate`
workspace and records every file's sha256 beside it; `push` (our custom task) pushes the model
directory; `pull` (a TaskRun) copies `$(tasks.push.results.IMAGE_URL)` with skopeo, unpacks the
layers and checks every file against the recorded sums. Steps use `script`, so Tekton never needs
to look an image's entrypoint up in the (plain HTTP) registry.
"""

from __future__ import annotations

import shlex
from typing import Any

from hack.demo.model import layout, metadata
from hack.tekton.pipelines import params, push_task

Obj = dict[str, Any]
MODEL_DIR = "demo-model"
SUMS = "demo-model.sha256"  # beside the model directory, so it is not pushed with it
WORKSPACES = [{"name": "model", "workspace": "shared"}]


def write_script(size: int) -> str:
    """Writes the model (metadata as text, shards from /dev/urandom) and its sha256 list."""
    texts = metadata(size)
    lines = [
        "set -eu",
        f'dir="$(workspaces.model.path)/{MODEL_DIR}"',
        'mkdir -p "$dir" && cd "$dir"',
    ]
    for name, length in layout(size).items():
        if name in texts:
            lines.append(f"printf '%s' {shlex.quote(texts[name].decode())} > {name}")
        else:
            lines.append(f"head -c {length} /dev/urandom > {name}")
    lines.append(f'sha256sum * > "$(workspaces.model.path)/{SUMS}"')
    lines.append('echo "wrote $(ls | wc -l) files, $(du -sh . | cut -f1)"')
    return "\n".join(lines) + "\n"


PULL_SCRIPT = f"""\
set -eu
skopeo copy --quiet --src-tls-verify=false "docker://$(params.image)" dir:/tmp/pulled
mkdir -p /tmp/root
for blob in /tmp/pulled/*; do
  case "$(basename "$blob")" in manifest.json|version) continue ;; esac
  tar -xf "$blob" -C /tmp/root 2>/dev/null || true   # the config blob is JSON, not a tar
done
cd /tmp/root/models
sha256sum -c "$(workspaces.model.path)/{SUMS}"
printf '%s' "$(wc -l < "$(workspaces.model.path)/{SUMS}")" > "$(results.verified-files.path)"
"""


def write_task(step_image: str, size: int) -> Obj:
    return {
        "name": "write-model",
        "workspaces": [{"name": "model", "workspace": "shared"}],
        "taskSpec": {
            "workspaces": [{"name": "model"}],
            "steps": [{"name": "write", "image": step_image, "script": write_script(size)}],
        },
    }


def pull_task(step_image: str) -> Obj:
    return {
        "name": "pull",
        "params": params(image="$(tasks.push.results.IMAGE_URL)"),
        "workspaces": [{"name": "model", "workspace": "shared"}],
        "taskSpec": {
            "params": [{"name": "image"}],
            "workspaces": [{"name": "model"}],
            "results": [{"name": "verified-files"}],
            "steps": [{"name": "pull", "image": step_image, "script": PULL_SCRIPT}],
        },
    }


def demo_pipeline_run(
    name: str,
    step_image: str,
    size: int,
    push_params: list[Obj],
    pull: bool,
    pod_template: Obj | None = None,
) -> Obj:
    """write-model -> push (-> pull): one PipelineRun on a fresh volumeClaimTemplate workspace."""
    tasks = [
        write_task(step_image, size),
        push_task("push", params=push_params, workspaces=WORKSPACES, runAfter=["write-model"]),
    ]
    if pull:
        tasks.append(pull_task(step_image))
    claim = max(1024, 2 * size >> 20)
    spec: Obj = {
        "pipelineSpec": {"workspaces": [{"name": "shared"}], "tasks": tasks},
        "workspaces": [
            {
                "name": "shared",
                "volumeClaimTemplate": {
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{claim}Mi"}},
                    }
                },
            }
        ],
    }
    if pod_template:
        spec["taskRunTemplate"] = {"podTemplate": pod_template}
    return {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": name}, "spec": spec}
