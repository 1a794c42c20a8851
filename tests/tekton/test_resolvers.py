"""Tekton's remote resolvers, installed in-cluster from the release's `config/resolvers` with the local
image (hack/tekton/incluster.py): a Pipeline task referenced the way users reference shared Tasks,
`taskRef: {resolver: cluster, params: ...}`, is fetched by the resolvers Deployment through a
ResolutionRequest and runs on the real nodes before our custom task pushes what it wrote. References that
cannot resolve, including those that would need a default server off this machine, fail the PipelineRun
with Tekton's own reason before any of its tasks (and so our push) runs.
"""

from __future__ import annotations

from typing import Any

from hack.localcluster.realcluster import RealCluster
from hack.tekton.pipelines import claim_template, pipeline_run
from tests.tekton.model import WS, model_push, pull_task, write_task
from tests.tekton.tkn import Tekton, condition, manifest_digest, param, result

Obj = dict[str, Any]
RESOLUTION = ("resolution.tekton.dev", "v1beta1", "resolutionrequests")


def resolved_task(resolver: str, **values: str) -> Obj:
    """Pipeline task `write-model` whose Task comes from `resolver` with `values` as its params."""
    ref_params = [{"name": k, "value": v} for k, v in values.items()]
    return {"name": "write-model", "workspaces": WS, "taskRef": {"resolver": resolver, "params": ref_params}}


async def resolution_requests(tk: Tekton) -> list[Obj]:
    got = await tk.co.list_namespaced_custom_object(*RESOLUTION[:2], tk.ns, RESOLUTION[2])
    return got["items"]


async def test_task_from_the_cluster_resolver_then_our_push(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any]
) -> None:
    reg, ns, step = tekton.registry, tk.ns, images["step"].ref
    # The shared Task, as a Task object in the namespace (what `kubectl apply -f task.yaml` gives).
    task = {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": "write-model"},
        "spec": write_task(step)["taskSpec"],
    }
    await tk.create(task)
    write = resolved_task("cluster", kind="task", name="write-model", namespace=ns)
    pr = pipeline_run(
        "resolved",
        [write, model_push(reg, f"{ns}/resolved:v1"), pull_task(step)],
        workspace=claim_template(),
    )
    await tk.create(pr)

    pr = await tk.wait_pr_done("resolved", within=420)
    assert condition(pr)["status"] == "True", await tk.describe("resolved")
    # The resolvers Deployment answered Tekton's request for the Task (nothing else resolves `cluster`).
    requests = await resolution_requests(tk)
    assert requests, "no ResolutionRequest in the namespace"
    for rr in requests:
        assert rr["metadata"]["labels"]["resolution.tekton.dev/type"] == "cluster"
        assert condition(rr)["status"] == "True", condition(rr)
        assert rr["status"]["data"]  # the Task, base64-encoded
    writer = (await tk.task_runs_of("resolved"))["write-model"]
    assert writer["spec"]["taskRef"]["resolver"] == "cluster"
    source = writer["status"]["provenance"]["refSource"]
    assert f"/namespaces/{ns}/task/write-model" in source["uri"]
    assert source["digest"]["sha256"]
    # Then our custom task pushed what the resolved Task wrote, and the pull checked every file.
    push = (await tk.custom_runs_of("resolved"))["push"]
    digest = result(push, "IMAGE_DIGEST")
    assert digest and digest.startswith("sha256:")
    assert await manifest_digest(reg, f"{ns}/resolved", "v1") == digest
    pull = (await tk.task_runs_of("resolved"))["pull"]
    assert param(pull, "image") == f"{reg}/{ns}/resolved@{digest}"
    assert result(pull, "verified-files") == "3"


# Each reference fails in the resolvers Deployment with this in the PipelineRun's message. The git one
# names no repository: the release's default (github.com's catalog) is unset here, so nothing is fetched
# from a default server. The hub resolver is off: its only defaults are Artifact Hub / Tekton Hub.
UNRESOLVABLE: dict[str, tuple[Obj, str]] = {
    "missing-task": (
        resolved_task("cluster", kind="task", name="no-such-task", namespace="$NS"),
        '"no-such-task" not found',
    ),
    "git-no-url": (
        resolved_task("git", revision="main", pathInRepo="task/x/x.yaml"),
        "must specify one of 'url' or 'repo'",
    ),
    "hub-off": (
        resolved_task("hub", kind="task", name="git-clone", version="0.9"),
        "enable-hub-resolver feature flag not true",
    ),
}


async def test_unresolvable_references_fail_the_pipelinerun_before_our_task(
    tk: Tekton, tekton: RealCluster
) -> None:
    reg, ns = tekton.registry, tk.ns
    for name, (write, _) in UNRESOLVABLE.items():
        for p in write["taskRef"]["params"]:
            p["value"] = p["value"].replace("$NS", ns)
        pr = pipeline_run(name, [write, model_push(reg, f"{ns}/{name}:v1")], workspace=claim_template())
        await tk.create(pr)

    for name, (_, said) in UNRESOLVABLE.items():
        pr = await tk.wait_pr_done(name, within=120)
        cond = condition(pr)
        assert (cond["status"], cond["reason"]) == ("False", "CouldntGetTask"), cond
        assert said in cond["message"], cond
        # Nothing ran: no TaskRun, no CustomRun, so no push pod and no image.
        assert not (pr.get("status") or {}).get("childReferences"), pr["status"]
        assert await manifest_digest(reg, f"{ns}/{name}", "v1") is None
