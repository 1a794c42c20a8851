"""PipelineRuns through the real Tekton pipelines controller (v1.9.x) and our real controller.

There is no container runtime, so no TaskRun pod (Tekton's entrypoint/init images) can run: every Pipeline
here is made of ModelImagePush custom tasks only. The "model producer" step is the test writing files onto
the workspace PVC before the run starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hack.registry import LocalRegistry
from hack.tekton.launcher import free_port
from hack.tekton.pipelines import params, pipeline_run, push_and_copy, push_task
from tests.tekton.servers import DenyOnceProxy, HangServer
from tests.tekton.tkn import Tekton, condition, manifest_digest, param, poll, result

WS = [{"name": "model", "workspace": "shared"}]
SOURCE = "dir:///workspace/model/mistral"


def write_model(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}\n')
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (root / "weights").mkdir()
    (root / "weights" / "model-00001.safetensors").write_bytes(os.urandom(3 << 20))


async def model_pvc(make_pvc, namespace: str) -> None:
    write_model(await make_pvc(namespace, "models") / "mistral")


def model_push(registry: str, image: str, **task: Any) -> dict[str, Any]:
    """Pipeline task `push`: the workspace's model to `registry/image`, over plain HTTP."""
    return push_task(
        "push",
        params=params(source=SOURCE, image=f"{registry}/{image}", insecure_registries=registry),
        workspaces=WS,
        **task,
    )


async def start_push(tk: Tekton, pr_name: str, task: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """Starts a one-task PipelineRun on the `models` PVC; returns the task's CustomRun once it exists."""
    await tk.create(pipeline_run(pr_name, [task], workspace_claim="models", **spec))
    return await tk.wait_child(pr_name, "push")


async def assert_pods_gone(tk: Tekton, custom_run: str) -> None:
    async def gone() -> bool:
        return not await tk.pods_of(custom_run)

    await poll(gone, 60, f"pods of CustomRun {custom_run} deleted")


async def assert_no_pod_running(tk: Tekton, custom_run: str) -> None:
    """The push process stopped: its pod is gone or terminal (a timed-out pod may be kept, like a Job's)."""
    phases: list[str] = []

    async def stopped() -> bool:
        phases[:] = [(p.get("status") or {}).get("phase", "?") for p in await tk.pods_of(custom_run)]
        return all(ph in ("Succeeded", "Failed") for ph in phases)

    await poll(stopped, 60, f"pods of CustomRun {custom_run} stopped")


async def test_pipeline_pushes_model_and_passes_digest_to_next_task(
    tk: Tekton, namespace: str, make_pvc, registry: LocalRegistry
) -> None:
    await model_pvc(make_pvc, namespace)
    reg = registry.host
    pr = push_and_copy(
        "push-and-copy",
        "models",
        "mistral",
        f"{reg}/{namespace}/mistral:v1",
        f"{reg}/{namespace}/mistral-copy:v1",
        insecure=reg,
    )
    await tk.create(pr)

    pr = await tk.wait_pr_done("push-and-copy")
    assert condition(pr)["status"] == "True", await tk.describe("push-and-copy")
    runs = await tk.custom_runs_of("push-and-copy")
    push, consume = runs["push"], runs["copy"]
    assert push["spec"]["customRef"]["kind"] == "ModelImagePush"
    digest = result(push, "IMAGE_DIGEST")
    url = result(push, "IMAGE_URL")
    assert digest and digest.startswith("sha256:")
    assert url == f"{reg}/{namespace}/mistral@{digest}"
    # The image really is in the registry under that digest.
    assert await manifest_digest(reg, f"{namespace}/mistral", "v1") == digest
    # Tekton substituted the result into the consumer's params ...
    assert param(consume, "source") == f"docker://{url}"
    # ... and the consumer copied exactly that image.
    assert result(consume, "IMAGE_DIGEST") == digest
    assert await manifest_digest(reg, f"{namespace}/mistral-copy", "v1") == digest


async def test_embedded_task_spec(tk: Tekton, namespace: str, make_pvc, registry: LocalRegistry) -> None:
    await model_pvc(make_pvc, namespace)
    reg = registry.host
    # Params in the embedded spec act as defaults; the pipeline task's params override them.
    spec = {"params": [{"name": "source", "value": SOURCE}, {"name": "image", "value": f"{reg}/wrong/x:v0"}]}
    task = push_task(
        "push",
        embedded=True,
        spec=spec,
        params=params(image=f"{reg}/{namespace}/embedded:v1", insecure_registries=reg),
        workspaces=WS,
    )
    await tk.create(pipeline_run("embedded", [task], workspace_claim="models"))

    pr = await tk.wait_pr_done("embedded")
    assert condition(pr)["status"] == "True", await tk.describe("embedded")
    run = (await tk.custom_runs_of("embedded"))["push"]
    assert "customRef" not in run["spec"]
    assert run["spec"]["customSpec"]["kind"] == "ModelImagePush"
    assert run["spec"]["customSpec"]["spec"] == spec
    digest = result(run, "IMAGE_DIGEST")
    assert digest and await manifest_digest(reg, f"{namespace}/embedded", "v1") == digest
    assert await manifest_digest(reg, "wrong/x", "v0") is None


async def test_cancelling_pipelinerun_cancels_our_run_and_pod(
    tk: Tekton, namespace: str, make_pvc, hang_registry: HangServer
) -> None:
    await model_pvc(make_pvc, namespace)
    run = await start_push(tk, "to-cancel", model_push(hang_registry.host, f"{namespace}/m:v1"))
    name = run["metadata"]["name"]
    await tk.wait_running_pod(name)

    await tk.patch_pipeline_run("to-cancel", {"spec": {"status": "Cancelled"}})

    pr = await tk.wait_pr_done("to-cancel", within=90)
    assert condition(pr)["reason"] == "Cancelled", await tk.describe("to-cancel")
    run = await tk.wait_cr_done(name)
    assert run["spec"]["status"] == "RunCancelled"
    assert condition(run)["status"] == "False"
    assert condition(run)["reason"] == "CustomRunCancelled"
    await assert_pods_gone(tk, name)


async def test_pipeline_timeout_reaches_our_run(
    tk: Tekton, namespace: str, make_pvc, hang_registry: HangServer
) -> None:
    await model_pvc(make_pvc, namespace)
    task = model_push(hang_registry.host, f"{namespace}/m:v1")
    run = await start_push(tk, "pipeline-timeout", task, timeouts={"pipeline": "25s"})
    name = run["metadata"]["name"]
    await tk.wait_pod(name)

    pr = await tk.wait_pr_done("pipeline-timeout", within=120)
    assert condition(pr)["reason"] == "PipelineRunTimeout", await tk.describe("pipeline-timeout")
    run = await tk.wait_cr_done(name)
    # Tekton cancels the CustomRuns of a timed-out PipelineRun, saying why.
    assert run["spec"]["status"] == "RunCancelled"
    assert "timed out" in run["spec"].get("statusMessage", "")
    assert condition(run)["reason"] == "CustomRunCancelled"
    assert "timed out" in condition(run)["message"]
    await assert_pods_gone(tk, name)


async def test_pipeline_task_timeout_times_out_our_run(
    tk: Tekton, namespace: str, make_pvc, hang_registry: HangServer
) -> None:
    await model_pvc(make_pvc, namespace)
    run = await start_push(
        tk, "task-timeout", model_push(hang_registry.host, f"{namespace}/m:v1", timeout="15s")
    )
    name = run["metadata"]["name"]
    assert run["spec"]["timeout"] == "15s"
    await tk.wait_pod(name)

    pr = await tk.wait_pr_done("task-timeout", within=120)
    assert condition(pr)["reason"] == "Failed", await tk.describe("task-timeout")
    run = await tk.custom_run(name)
    assert condition(run)["reason"] == "CustomRunTimedOut"
    await assert_no_pod_running(tk, name)


async def test_retry_after_failed_first_attempt(
    tk: Tekton, namespace: str, make_pvc, registry: LocalRegistry
) -> None:
    await model_pvc(make_pvc, namespace)
    proxy = DenyOnceProxy(registry.host)
    await proxy.start()
    try:
        task = model_push(proxy.host, f"{namespace}/retried:v1", retries=1)
        await tk.create(pipeline_run("retried", [task], workspace_claim="models"))
        pr = await tk.wait_pr_done("retried")
    finally:
        await proxy.stop()

    assert condition(pr)["status"] == "True", await tk.describe("retried")
    run = (await tk.custom_runs_of("retried"))["push"]
    assert len(proxy.denied) == 1, (proxy.denied, run["status"])
    assert run["spec"]["retries"] == 1
    # Tekton's retry contract: the failed attempt is archived, the run itself succeeded.
    archived = run["status"].get("retriesStatus") or []
    assert len(archived) == 1, (proxy.denied, run["status"])
    assert archived[0]["conditions"][0]["status"] == "False"
    assert archived[0]["conditions"][0]["reason"] == "AuthenticationFailed"
    digest = result(run, "IMAGE_DIGEST")
    assert digest and await manifest_digest(registry.host, f"{namespace}/retried", "v1") == digest


async def test_failing_push_fails_pipelinerun_with_our_reason(tk: Tekton, namespace: str, make_pvc) -> None:
    await model_pvc(make_pvc, namespace)
    closed = f"127.0.0.1:{free_port()}"  # nothing listens here
    await tk.create(
        pipeline_run("failing", [model_push(closed, f"{namespace}/m:v1")], workspace_claim="models")
    )

    pr = await tk.wait_pr_done("failing", within=240)
    summary = await tk.describe("failing")
    assert condition(pr)["status"] == "False", summary
    assert condition(pr)["reason"] == "Failed", summary
    run = (await tk.custom_runs_of("failing"))["push"]
    # What `tkn pr describe` shows for the task: our reason and an actionable message.
    assert condition(run)["reason"] == "RegistryUnreachable", summary
    assert closed in condition(run)["message"], summary
    assert f"push ({run['metadata']['name']}): False RegistryUnreachable" in summary


async def test_invalid_params_fail_pipelinerun_without_a_pod(tk: Tekton, namespace: str) -> None:
    task = push_task("push", params=params(source="ftp://nope", image="127.0.0.1:1/x/y:z"))
    await tk.create(pipeline_run("invalid", [task]))

    pr = await tk.wait_pr_done("invalid", within=60)
    assert condition(pr)["reason"] == "Failed", await tk.describe("invalid")
    run = (await tk.custom_runs_of("invalid"))["push"]
    assert condition(run)["reason"] == "InvalidParams"
    assert "source" in condition(run)["message"]
    assert await tk.pods_of(run["metadata"]["name"]) == []
