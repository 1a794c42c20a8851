"""Tekton's remote resolvers, installed in-cluster from the release's `config/resolvers` with the local
image (hack/tekton/incluster.py): a Pipeline task referenced the way users reference shared Tasks,
`taskRef: {resolver: cluster|bundles|git|http, params: ...}`, is fetched by the resolvers Deployment
through a ResolutionRequest (from the namespace; from a Tekton bundle in the cluster's registry; from a
`git daemon` and an HTTP server on the pod network's gateway: servers of the user's own, the only kind
reachable here) and runs on the real nodes before our custom task pushes what it wrote. References that
cannot resolve, including those that would need a default server off this machine, fail the PipelineRun
with Tekton's own reason before any of its tasks (and so our push) runs.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from hack.localcluster.realcluster import RealCluster
from hack.tekton.pipelines import claim_template, pipeline_run
from tests.tekton.bundle import push_bundle
from tests.tekton.gitserver import GitDaemon, make_repo
from tests.tekton.model import WS, model_push, pull_task, write_task
from tests.tekton.servers import gateway
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


def write_model_task(step_image: str) -> Obj:
    """The shared Task users keep apart from their Pipelines."""
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": "write-model"},
        "spec": write_task(step_image)["taskSpec"],
    }


async def test_task_from_the_cluster_resolver_then_our_push(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any]
) -> None:
    reg, ns, step = tekton.registry, tk.ns, images["step"].ref
    # The Task as an object in the namespace (what `kubectl apply -f task.yaml` gives).
    await tk.create(write_model_task(step))
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


async def test_task_from_a_bundle_in_the_local_registry_then_our_push(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any]
) -> None:
    # The bundles resolver with a registry of the user's own on the pod network's gateway (plain HTTP,
    # which go-containerregistry uses for private addresses), as `tkn bundle push` would have left it.
    reg, ns = tekton.registry, tk.ns
    digest = await push_bundle(reg, f"{ns}/tasks", "v1", [write_model_task(images["step"].ref)])
    write = resolved_task("bundles", bundle=f"{reg}/{ns}/tasks:v1", name="write-model", kind="task")
    await tk.create(
        pipeline_run("bundled", [write, model_push(reg, f"{ns}/bundled:v1")], workspace=claim_template())
    )

    pr = await tk.wait_pr_done("bundled", within=300)
    assert condition(pr)["status"] == "True", await tk.describe("bundled")
    writer = (await tk.task_runs_of("bundled"))["write-model"]
    source = writer["status"]["provenance"]["refSource"]
    assert source["uri"] == f"{reg}/{ns}/tasks"
    assert source["digest"] == {"sha256": digest.removeprefix("sha256:")}
    pushed = result((await tk.custom_runs_of("bundled"))["push"], "IMAGE_DIGEST")
    assert pushed and await manifest_digest(reg, f"{ns}/bundled", "v1") == pushed


@pytest.fixture
def git_daemon(tekton: RealCluster, tmp_path: Path) -> Iterator[GitDaemon]:
    daemon = GitDaemon(tmp_path / "git", gateway(tekton), tmp_path / "git-daemon.log")
    (tmp_path / "git").mkdir()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


async def test_task_from_a_git_server_of_our_own_then_our_push(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any], git_daemon: GitDaemon
) -> None:
    # The git resolver clones (the `git` CLI in its image) from a server the pods reach, named in the
    # request: there is no default URL to fall back on here.
    reg, ns = tekton.registry, tk.ns
    path = "task/write-model/write-model.yaml"
    commit = make_repo(git_daemon.root, "tasks.git", {path: write_model_task(images["step"].ref)})
    url = f"{git_daemon.url}/tasks.git"
    write = resolved_task("git", url=url, revision="main", pathInRepo=path)
    await tk.create(
        pipeline_run("from-git", [write, model_push(reg, f"{ns}/from-git:v1")], workspace=claim_template())
    )

    pr = await tk.wait_pr_done("from-git", within=300)
    assert condition(pr)["status"] == "True", await tk.describe("from-git")
    source = (await tk.task_runs_of("from-git"))["write-model"]["status"]["provenance"]["refSource"]
    assert source["uri"] == f"git+{url}"
    assert source["digest"] == {"sha1": commit}
    assert source["entryPoint"] == path
    pushed = result((await tk.custom_runs_of("from-git"))["push"], "IMAGE_DIGEST")
    assert pushed and await manifest_digest(reg, f"{ns}/from-git", "v1") == pushed


class FileServer:
    """An HTTP server of the user's own on the pod network's gateway: `files` (path -> body), 404 else."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []  # paths asked for
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        body = self.files.get(request.path)
        return web.Response(body=body) if body is not None else web.Response(status=404)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.address}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def file_server(tekton: RealCluster) -> AsyncIterator[FileServer]:
    srv = FileServer(gateway(tekton))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def test_task_from_an_http_server_of_our_own_then_our_push(
    tk: Tekton, tekton: RealCluster, images: dict[str, Any], file_server: FileServer
) -> None:
    reg, ns = tekton.registry, tk.ns
    body = yaml.safe_dump(write_model_task(images["step"].ref)).encode()
    file_server.files["/tasks/write-model.yaml"] = body
    url = f"{file_server.url}/tasks/write-model.yaml"
    write = resolved_task("http", url=url)
    await tk.create(
        pipeline_run("from-http", [write, model_push(reg, f"{ns}/from-http:v1")], workspace=claim_template())
    )

    pr = await tk.wait_pr_done("from-http", within=300)
    assert condition(pr)["status"] == "True", await tk.describe("from-http")
    assert "/tasks/write-model.yaml" in file_server.requests
    source = (await tk.task_runs_of("from-http"))["write-model"]["status"]["provenance"]["refSource"]
    assert source["uri"] == url
    assert source["digest"] == {"sha256": hashlib.sha256(body).hexdigest()}
    pushed = result((await tk.custom_runs_of("from-http"))["push"], "IMAGE_DIGEST")
    assert pushed and await manifest_digest(reg, f"{ns}/from-http", "v1") == pushed


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
    for name, (template, _) in UNRESOLVABLE.items():
        write = copy.deepcopy(template)
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
