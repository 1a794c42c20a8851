"""PipelineRuns through the in-cluster Tekton (v1.9.x, webhook and affinity assistant on) and our real
controller, on the real nodes, written the way users write them: a TaskRun writes a model into a
`volumeClaimTemplate` workspace, our custom task pushes it, and a TaskRun consumes
`$(tasks.push.results.IMAGE_URL)` and pulls it back with skopeo.
"""

from __future__ import annotations

from typing import Any

from hack.localcluster.realcluster import RealCluster
from hack.ports import free_port
from hack.tekton.pipelines import params, pipeline_run, push_task
from tests.tekton.model import SOURCE, WS, model_pipeline, model_push, pull_task
from tests.tekton.servers import DenyOnceProxy, HangServer, gateway
from tests.tekton.tkn import Tekton, condition, manifest_digest, param, poll, result


async def assert_pods_gone(tk: Tekton, custom_run: str) -> None:
    async def gone() -> bool:
        return not await tk.pods_of(custom_run)

    await poll(gone, 90, f"pods of CustomRun {custom_run} deleted")


async def assert_no_pod_running(tk: Tekton, custom_run: str) -> None:
    """The push process stopped: its pod is gone or terminal (a timed-out pod may be kept, like a Job's)."""
    phases: list[str] = []

    async def stopped() -> bool:
        phases[:] = [(p.get("status") or {}).get("phase", "?") for p in await tk.pods_of(custom_run)]
        return all(ph in ("Succeeded", "Failed") for ph in phases)

    await poll(stopped, 90, f"pods of CustomRun {custom_run} stopped")


async def test_pipeline_of_taskruns_around_our_task_pushes_pulls_and_passes_results(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any]
) -> None:
    reg, ns, step = tekton.registry, tk.ns, images["step"].ref
    copy = push_task(
        "copy",
        params=params(
            source="docker://$(tasks.push.results.IMAGE_URL)",
            image=f"{reg}/{ns}/mistral-copy:v1",
            mode="copy",
            insecure_registries=reg,
        ),
    )
    pr = model_pipeline("mixed", step, model_push(reg, f"{ns}/mistral:v1"), pull_task(step), copy)
    await tk.create(pr)

    pr = await tk.wait_pr_done("mixed", within=420)
    assert condition(pr)["status"] == "True", await tk.describe("mixed")
    kinds = sorted(c["kind"] for c in pr["status"]["childReferences"])
    assert kinds == ["CustomRun", "CustomRun", "TaskRun", "TaskRun"]
    runs = await tk.custom_runs_of("mixed")
    push, consume = runs["push"], runs["copy"]
    assert push["spec"]["customRef"]["kind"] == "ModelImagePush"
    digest = result(push, "IMAGE_DIGEST")
    url = result(push, "IMAGE_URL")
    assert digest and digest.startswith("sha256:")
    assert url == f"{reg}/{ns}/mistral@{digest}"
    # The image really is in the registry under that digest.
    assert await manifest_digest(reg, f"{ns}/mistral", "v1") == digest
    # The pull TaskRun got the URL, pulled it with skopeo and found every file the writer wrote.
    pull = (await tk.task_runs_of("mixed"))["pull"]
    assert param(pull, "image") == url
    assert result(pull, "verified-files") == "3"
    # Tekton substituted the result into the consumer's params ...
    assert param(consume, "source") == f"docker://{url}"
    # ... and the consumer copied exactly that image.
    assert result(consume, "IMAGE_DIGEST") == digest
    assert await manifest_digest(reg, f"{ns}/mistral-copy", "v1") == digest


async def test_embedded_task_spec(tk: Tekton, tekton: RealCluster, images: dict[str, Any]) -> None:
    reg, ns = tekton.registry, tk.ns
    # Params in the embedded spec act as defaults; the pipeline task's params override them.
    spec = {"params": [{"name": "source", "value": SOURCE}, {"name": "image", "value": f"{reg}/wrong/x:v0"}]}
    task = push_task(
        "push",
        embedded=True,
        spec=spec,
        params=params(image=f"{reg}/{ns}/embedded:v1", insecure_registries=reg),
        workspaces=WS,
        runAfter=["write-model"],
    )
    await tk.create(model_pipeline("embedded", images["step"].ref, task))

    pr = await tk.wait_pr_done("embedded", within=300)
    assert condition(pr)["status"] == "True", await tk.describe("embedded")
    run = (await tk.custom_runs_of("embedded"))["push"]
    assert "customRef" not in run["spec"]
    assert run["spec"]["customSpec"]["kind"] == "ModelImagePush"
    assert run["spec"]["customSpec"]["spec"] == spec
    digest = result(run, "IMAGE_DIGEST")
    assert digest and await manifest_digest(reg, f"{ns}/embedded", "v1") == digest
    assert await manifest_digest(reg, "wrong/x", "v0") is None


def stuck_copy(hang: HangServer, registry: str, ns: str, **task: Any) -> dict[str, Any]:
    """Our task copying from a registry that never answers: its pod runs until cancelled or timed out."""
    return push_task(
        "push",
        params=params(
            source=f"docker://{hang.host}/{ns}/m:v1",
            image=f"{registry}/{ns}/m:v1",
            insecure_registries=f"{hang.host},{registry}",
        ),
        **task,
    )


async def test_cancelling_pipelinerun_cancels_our_run_and_pod(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any], hang_registry: HangServer
) -> None:
    push = model_push(hang_registry.host, f"{tk.ns}/m:v1")
    await tk.create(model_pipeline("to-cancel", images["step"].ref, push))
    run = await tk.wait_child("to-cancel", "push", within=240)
    name = run["metadata"]["name"]
    await tk.wait_running_pod(name, within=180)

    await tk.patch_pipeline_run("to-cancel", {"spec": {"status": "Cancelled"}})

    pr = await tk.wait_pr_done("to-cancel", within=120)
    assert condition(pr)["reason"] == "Cancelled", await tk.describe("to-cancel")
    run = await tk.wait_cr_done(name)
    assert run["spec"]["status"] == "RunCancelled"
    assert condition(run)["status"] == "False"
    assert condition(run)["reason"] == "CustomRunCancelled"
    await assert_pods_gone(tk, name)


async def test_pipeline_timeout_reaches_our_run(
    tk: Tekton, tekton: RealCluster, hang_registry: HangServer
) -> None:
    # No TaskRun before it: the pipeline's whole timeout is spent inside our (stuck) run.
    task = stuck_copy(hang_registry, tekton.registry, tk.ns)
    await tk.create(pipeline_run("pipeline-timeout", [task], timeouts={"pipeline": "25s"}))
    run = await tk.wait_child("pipeline-timeout", "push")
    name = run["metadata"]["name"]
    await tk.wait_pod(name)

    pr = await tk.wait_pr_done("pipeline-timeout", within=150)
    assert condition(pr)["reason"] == "PipelineRunTimeout", await tk.describe("pipeline-timeout")
    run = await tk.wait_cr_done(name)
    # Tekton cancels the CustomRuns of a timed-out PipelineRun, saying why.
    assert run["spec"]["status"] == "RunCancelled"
    assert "timed out" in run["spec"].get("statusMessage", "")
    assert condition(run)["reason"] == "CustomRunCancelled"
    assert "timed out" in condition(run)["message"]
    await assert_pods_gone(tk, name)


async def test_pipeline_task_timeout_times_out_our_run(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any], hang_registry: HangServer
) -> None:
    push = model_push(hang_registry.host, f"{tk.ns}/m:v1", timeout="15s")
    await tk.create(model_pipeline("task-timeout", images["step"].ref, push))
    run = await tk.wait_child("task-timeout", "push", within=240)
    name = run["metadata"]["name"]
    assert run["spec"]["timeout"] == "15s"
    await tk.wait_pod(name)

    pr = await tk.wait_pr_done("task-timeout", within=150)
    assert condition(pr)["reason"] == "Failed", await tk.describe("task-timeout")
    run = await tk.custom_run(name)
    assert condition(run)["reason"] == "CustomRunTimedOut"
    await assert_no_pod_running(tk, name)


async def test_retry_after_failed_first_attempt(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any]
) -> None:
    proxy = DenyOnceProxy(gateway(tekton), tekton.registry)
    await proxy.start()
    try:
        push = model_push(proxy.host, f"{tk.ns}/retried:v1", retries=1)
        await tk.create(model_pipeline("retried", images["step"].ref, push))
        pr = await tk.wait_pr_done("retried", within=420)
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
    assert digest and await manifest_digest(tekton.registry, f"{tk.ns}/retried", "v1") == digest


async def test_failing_push_fails_pipelinerun_with_our_reason(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any]
) -> None:
    closed = f"{gateway(tekton)}:{free_port()}"  # nothing listens here
    await tk.create(model_pipeline("failing", images["step"].ref, model_push(closed, f"{tk.ns}/m:v1")))

    pr = await tk.wait_pr_done("failing", within=300)
    summary = await tk.describe("failing")
    assert condition(pr)["status"] == "False", summary
    assert condition(pr)["reason"] == "Failed", summary
    run = (await tk.custom_runs_of("failing"))["push"]
    # What `tkn pr describe` shows for the task: our reason and an actionable message.
    assert condition(run)["reason"] == "RegistryUnreachable", summary
    assert closed in condition(run)["message"], summary
    assert f"push ({run['metadata']['name']}): False RegistryUnreachable" in summary


async def test_invalid_params_fail_pipelinerun_without_a_pod(tk: Tekton) -> None:
    task = push_task("push", params=params(source="ftp://nope", image="127.0.0.1:1/x/y:z"))
    await tk.create(pipeline_run("invalid", [task]))

    pr = await tk.wait_pr_done("invalid", within=60)
    assert condition(pr)["reason"] == "Failed", await tk.describe("invalid")
    run = (await tk.custom_runs_of("invalid"))["push"]
    assert condition(run)["reason"] == "InvalidParams"
    assert "source" in condition(run)["message"]
    assert await tk.pods_of(run["metadata"]["name"]) == []
