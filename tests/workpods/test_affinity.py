"""Tekton's affinity assistant with the real Tekton controller (issue 10, point 8).

The in-cluster Tekton runs with `coschedule: workspaces`: for a PipelineRun whose TaskRuns share a
volumeClaimTemplate workspace it starts an assistant pod and gives every TaskRun pod a pod affinity to it, so
they all land on the node that holds the volume. Our custom task's pod is not a TaskRun; Tekton only
annotates the CustomRun with the assistant's name, and the controller must give its work pod the same
affinity. This test runs write-model (TaskRun) -> push (our CustomRun) -> pull (TaskRun) and compares our
pod with the TaskRun pods Tekton made. The controller is a host process (the in-cluster Deployment is scaled
to zero outside tests/cluster/test_incluster.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.demo.pipelines import MODEL_DIR, demo_pipeline_run
from hack.images import ensure
from hack.tekton.pipelines import params
from tests.e2e.conftest import CustomRuns
from tests.fixtures.cluster import RealCluster, wait_for
from tests.workpods.support import host_controller

pytestmark = pytest.mark.cluster
AA_ANNOTATION = "pipeline.tekton.dev/affinity-assistant"
AA_SELECTOR = "app.kubernetes.io/component=affinity-assistant"


async def _pods(core: client.CoreV1Api, ns: str, selector: str) -> list[dict[str, Any]]:
    resp = await core.list_namespaced_pod(ns, label_selector=selector, _preload_content=False)
    try:
        return json.loads(await resp.read())["items"]
    finally:
        resp.release()


async def test_work_pod_follows_tektons_affinity_assistant(
    real_cluster: RealCluster, real_api: client.ApiClient, real_namespace: str, tmp_path: Path
) -> None:
    images = ensure(["model-image-push", "step"], real_cluster.registry)
    core = client.CoreV1Api(real_api)
    custom = client.CustomObjectsApi(real_api)
    ns = real_namespace
    # the assistant pod goes away with the PipelineRun: note where each one ran while it exists
    assistants: dict[str, str] = {}

    async def watch_assistants() -> None:
        while True:
            for pod in await _pods(core, ns, AA_SELECTOR):
                node = pod["spec"].get("nodeName")
                if node:
                    assistants[pod["metadata"]["labels"]["app.kubernetes.io/instance"]] = node
            await asyncio.sleep(0.5)

    image = f"{real_cluster.registry}/{ns}/affinity:v1"
    push = params(source=f"dir:///workspace/model/{MODEL_DIR}", image=image)
    pr = demo_pipeline_run("coschedule", images["step"].ref, 2 << 20, push, pull=True)
    work_image = images["model-image-push"].ref
    watcher = asyncio.create_task(watch_assistants())
    try:
        async with host_controller(real_cluster, ns, work_image, tmp_path / "ctl.log"):
            await custom.create_namespaced_custom_object("tekton.dev", "v1", ns, "pipelineruns", pr)

            async def done() -> dict[str, Any] | None:
                got = await custom.get_namespaced_custom_object(
                    "tekton.dev", "v1", ns, "pipelineruns", "coschedule"
                )
                conds = got.get("status", {}).get("conditions", [])
                return got if conds and conds[0]["status"] != "Unknown" else None

            got = await wait_for(done, 420, "PipelineRun coschedule to finish")
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert got["status"]["conditions"][0]["reason"] == "Succeeded", json.dumps(got["status"])[-3000:]

    # Tekton created the CustomRun with the assistant's name on it
    children = got["status"]["childReferences"]
    cr_name = next(c["name"] for c in children if c["kind"] == "CustomRun")
    cr = await CustomRuns(real_api, ns).get(cr_name)
    assistant = cr["metadata"].get("annotations", {}).get(AA_ANNOTATION)
    assert assistant, cr["metadata"]
    assert assistant in assistants, (assistant, assistants)

    # our work pod has exactly the pod affinity Tekton gave the TaskRun pods, and ran on the assistant's node
    work = await CustomRuns(real_api, ns).pods(cr_name)
    assert len(work) == 1, [p["metadata"]["name"] for p in work]
    taskrun_pods = await _pods(core, ns, "tekton.dev/pipelineRun=coschedule,tekton.dev/taskRun")
    assert {p["metadata"]["labels"]["tekton.dev/pipelineTask"] for p in taskrun_pods} == {
        "write-model",
        "pull",
    }
    for tr_pod in taskrun_pods:
        assert work[0]["spec"]["affinity"]["podAffinity"] == tr_pod["spec"]["affinity"]["podAffinity"], (
            work[0]["spec"]["affinity"],
            tr_pod["spec"]["affinity"],
        )
        assert tr_pod["spec"]["nodeName"] == assistants[assistant]
    print(f"affinity of the work pod: {json.dumps(work[0]['spec']['affinity'])}")
    assert work[0]["spec"]["nodeName"] == assistants[assistant]
    assert work[0]["status"]["phase"] == "Succeeded"
