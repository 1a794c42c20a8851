"""Tekton objects for the tests: API calls, waits and a `tkn pr describe`-like summary."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from hack.tekton.pipelines import Obj

GROUP = "tekton.dev"
MERGE = "application/merge-patch+json"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


class Tekton:
    """Thin async API over the Tekton objects of one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.co = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    async def create(self, obj: Obj) -> Obj:
        version = obj["apiVersion"].split("/")[1]
        plural = obj["kind"].lower() + "s"
        return await self.co.create_namespaced_custom_object(GROUP, version, self.ns, plural, obj)

    async def pipeline_run(self, name: str) -> Obj:
        return await self.co.get_namespaced_custom_object(GROUP, "v1", self.ns, "pipelineruns", name)

    async def custom_run(self, name: str) -> Obj:
        return await self.co.get_namespaced_custom_object(GROUP, "v1beta1", self.ns, "customruns", name)

    async def patch_pipeline_run(self, name: str, patch: Obj) -> Obj:
        return await self.co.patch_namespaced_custom_object(
            GROUP, "v1", self.ns, "pipelineruns", name, patch, _content_type=MERGE
        )

    async def custom_runs_of(self, pr_name: str) -> dict[str, Obj]:
        """pipelineTask name -> CustomRun, for the children Tekton recorded in the PipelineRun status."""
        pr = await self.pipeline_run(pr_name)
        out: dict[str, Obj] = {}
        for child in (pr.get("status") or {}).get("childReferences") or []:
            if child.get("kind") == "CustomRun":
                out[child["pipelineTaskName"]] = await self.custom_run(child["name"])
        return out

    async def task_runs_of(self, pr_name: str) -> dict[str, Obj]:
        """pipelineTask name -> TaskRun, likewise."""
        pr = await self.pipeline_run(pr_name)
        out: dict[str, Obj] = {}
        for child in (pr.get("status") or {}).get("childReferences") or []:
            if child.get("kind") == "TaskRun":
                out[child["pipelineTaskName"]] = await self.co.get_namespaced_custom_object(
                    GROUP, "v1", self.ns, "taskruns", child["name"]
                )
        return out

    async def pods_of(self, custom_run: str) -> list[Obj]:
        pods = await self.core.list_namespaced_pod(self.ns, _preload_content=False)
        try:
            items = json.loads(await pods.read())["items"]
        finally:
            pods.release()
        return [
            p
            for p in items
            if (p["metadata"].get("annotations") or {}).get("modelpush.dev/customrun") == custom_run
        ]

    async def wait_pr_done(self, name: str, within: float = 180.0) -> Obj:
        return await self._wait(lambda: self.pipeline_run(name), within, f"PipelineRun {name} done")

    async def wait_cr_done(self, name: str, within: float = 120.0) -> Obj:
        return await self._wait(lambda: self.custom_run(name), within, f"CustomRun {name} done")

    async def wait_child(self, pr_name: str, task: str, within: float = 60.0) -> Obj:
        async def get() -> Obj | None:
            return (await self.custom_runs_of(pr_name)).get(task)

        return await poll(get, within, f"CustomRun of task {task} in {pr_name}")

    async def wait_pod(self, custom_run: str, within: float = 90.0) -> Obj:
        async def get() -> Obj | None:
            pods = await self.pods_of(custom_run)
            return pods[0] if pods else None

        return await poll(get, within, f"a pod of CustomRun {custom_run}")

    async def wait_running_pod(self, custom_run: str, within: float = 90.0) -> Obj:
        async def get() -> Obj | None:
            pods = await self.pods_of(custom_run)
            return next((p for p in pods if (p.get("status") or {}).get("phase") == "Running"), None)

        return await poll(get, within, f"a Running pod of CustomRun {custom_run}")

    async def _wait(self, get: Any, within: float, what: str) -> Obj:
        async def done() -> Obj | None:
            obj = await get()
            return obj if succeeded(obj) in ("True", "False") else None

        return await poll(done, within, what)

    async def describe(self, pr_name: str) -> str:
        """What `tkn pr describe` shows: the run's status and, per task, conditions[0] reason/message."""
        pr = await self.pipeline_run(pr_name)
        lines = [f"PipelineRun {pr_name}: {condition_line(pr)}"]
        children = {**await self.task_runs_of(pr_name), **await self.custom_runs_of(pr_name)}
        for task, run in children.items():
            lines.append(f"  {task} ({run['metadata']['name']}): {condition_line(run)}")
        return "\n".join(lines)


def condition(obj: Obj) -> Obj:
    conds = (obj.get("status") or {}).get("conditions") or []
    return conds[0] if conds else {}


def succeeded(obj: Obj) -> str | None:
    c = condition(obj)
    return c.get("status") if c.get("type") == "Succeeded" else None


def condition_line(obj: Obj) -> str:
    c = condition(obj)
    return f"{c.get('status')} {c.get('reason')}: {c.get('message')}"


def result(obj: Obj, name: str) -> str | None:
    for r in (obj.get("status") or {}).get("results") or []:
        if r.get("name") == name:
            return r.get("value")
    return None


def param(obj: Obj, name: str) -> Any:
    for p in obj["spec"].get("params") or []:
        if p.get("name") == name:
            return p.get("value")
    return None


async def poll(get: Any, within: float, what: str, every: float = 0.5) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last = None
    while loop.time() < deadline:
        last = await get()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")


async def manifest_digest(registry_host: str, repo: str, reference: str) -> str | None:
    """The digest a real registry serves for repo:reference (None when absent)."""
    url = f"http://{registry_host}/v2/{repo}/manifests/{reference}"
    async with aiohttp.ClientSession() as http, http.head(url, headers={"Accept": MANIFEST_TYPES}) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return resp.headers.get("Docker-Content-Digest")
