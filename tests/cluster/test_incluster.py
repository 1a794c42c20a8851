"""Installed the way users install: Tekton from its release manifests (webhook included) and this controller
from config/default as a 2-replica Deployment on its ServiceAccount, pushing through a PipelineRun whose
TaskRuns write the model and pull the pushed image back."""

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from hack.demo.pipelines import MODEL_DIR, demo_pipeline_run
from hack.localcluster.realcluster import CONTROLLER_DEPLOYMENT, CONTROLLER_NS, RealCluster
from hack.tekton.pipelines import params
from tests.fixtures.cluster import wait_for

TEKTON_NS = "tekton-pipelines"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def stack(real_cluster: RealCluster) -> Iterator[RealCluster]:
    """The session's real cluster plus Tekton and the in-cluster controller (idempotent installs). The
    controller is scaled to zero after this module: it watches every namespace, so later tests' host-process
    controllers would race it for their CustomRuns (a buildah run once got its unprivileged pod)."""
    real_cluster.install_tekton()
    real_cluster.install_controller()
    yield real_cluster
    real_cluster.uninstall_controller()


async def test_tekton_and_the_controller_run_as_deployments_with_one_leader(stack, real_api):
    apps = client.AppsV1Api(real_api)
    core = client.CoreV1Api(real_api)

    for name in ("tekton-pipelines-controller", "tekton-pipelines-webhook"):
        d = await apps.read_namespaced_deployment(name, TEKTON_NS)
        assert d.status.available_replicas == 1, name
    ours = await apps.read_namespaced_deployment(CONTROLLER_DEPLOYMENT, CONTROLLER_NS)
    assert (ours.spec.replicas, ours.status.ready_replicas) == (2, 2)
    pods = await core.list_namespaced_pod(
        CONTROLLER_NS, label_selector="app.kubernetes.io/name=model-image-push"
    )
    assert {p.spec.service_account_name for p in pods.items} == {"model-image-push-controller"}
    assert {p.status.container_statuses[0].image for p in pods.items} == {stack.image("model-image-push")}

    async def leader() -> str:
        lease = await client.CoordinationV1Api(real_api).read_namespaced_lease(
            CONTROLLER_DEPLOYMENT, CONTROLLER_NS
        )
        return lease.spec.holder_identity or ""

    assert await wait_for(leader, 60, "a leader") in {p.metadata.name for p in pods.items}


async def test_webhook_converts_v1beta1_and_rejects_invalid_pipelines(stack, real_api, real_namespace):
    custom = client.CustomObjectsApi(real_api)
    beta = {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "beta"},
        "spec": {
            "tasks": [
                {"name": "t", "taskSpec": {"steps": [{"image": stack.image("base"), "script": "true"}]}}
            ]
        },
    }
    await custom.create_namespaced_custom_object("tekton.dev", "v1beta1", real_namespace, "pipelines", beta)

    as_v1 = await custom.get_namespaced_custom_object("tekton.dev", "v1", real_namespace, "pipelines", "beta")

    assert as_v1["apiVersion"] == "tekton.dev/v1"
    assert as_v1["spec"]["tasks"][0]["taskSpec"]["steps"][0]["script"] == "true"
    bad = {**beta, "metadata": {"name": "bad"}, "spec": {"tasks": [{"name": "t"}]}}
    with pytest.raises(client.ApiException) as err:
        await custom.create_namespaced_custom_object(
            "tekton.dev", "v1beta1", real_namespace, "pipelines", bad
        )
    assert err.value.status == 400 and "validation.webhook.pipeline.tekton.dev" in err.value.body


async def test_pipelinerun_of_taskruns_around_the_custom_task_pushes_through_the_incluster_controller(
    stack, real_api, real_namespace
):
    custom = client.CustomObjectsApi(real_api)
    image = f"{stack.registry}/incluster/model:v1"
    push = params(source=f"dir:///workspace/model/{MODEL_DIR}", image=image)
    run = demo_pipeline_run("incluster", stack.image("step"), 2 << 20, push, pull=True)
    await custom.create_namespaced_custom_object("tekton.dev", "v1", real_namespace, "pipelineruns", run)

    async def done() -> dict[str, Any] | None:
        pr = await custom.get_namespaced_custom_object(
            "tekton.dev", "v1", real_namespace, "pipelineruns", "incluster"
        )
        conds = pr.get("status", {}).get("conditions", [])
        return pr if conds and conds[0]["status"] != "Unknown" else None

    pr = await wait_for(done, 420, "PipelineRun incluster to finish")

    assert pr["status"]["conditions"][0]["reason"] == "Succeeded", json.dumps(pr["status"], indent=1)[-3000:]
    kinds = sorted(c["kind"] for c in pr["status"]["childReferences"])
    assert kinds == ["CustomRun", "TaskRun", "TaskRun"]
    cr_name = next(c["name"] for c in pr["status"]["childReferences"] if c["kind"] == "CustomRun")
    cr = await custom.get_namespaced_custom_object(
        "tekton.dev", "v1beta1", real_namespace, "customruns", cr_name
    )
    results = {r["name"]: r["value"] for r in cr["status"]["results"]}
    async with (
        aiohttp.ClientSession() as s,
        s.head(f"http://{stack.registry}/v2/incluster/model/manifests/v1", headers={"Accept": MANIFEST}) as r,
    ):
        assert results["IMAGE_DIGEST"] == r.headers["Docker-Content-Digest"]  # the registry's word
    pulled = next(t for t in pr["status"]["childReferences"] if t["pipelineTaskName"] == "pull")
    tr = await custom.get_namespaced_custom_object(
        "tekton.dev", "v1", real_namespace, "taskruns", pulled["name"]
    )
    assert int({r["name"]: r["value"] for r in tr["status"]["results"]}["verified-files"]) > 0
