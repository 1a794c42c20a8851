"""The few API calls the demo makes (sync, over the admin client certificate)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from hack.localcluster.rest import Rest

T = TypeVar("T")
Obj = dict[str, Any]
TEKTON = "/apis/tekton.dev"


class ApiError(RuntimeError):
    pass


def wait(fn: Callable[[], T | None], timeout: float, what: str, every: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise ApiError(f"timed out after {timeout:.0f}s waiting for {what}")


class Kube:
    def __init__(self, rest: Rest) -> None:
        self.rest = rest

    def _call(self, method: str, path: str, body: Obj | None = None, ok: tuple[int, ...] = (200,)) -> Obj:
        code, obj = self.rest.request(method, path, body)
        if code not in ok:
            raise ApiError(f"{method} {path}: HTTP {code}: {obj}")
        return obj if isinstance(obj, dict) else {}

    def get(self, path: str) -> Obj | None:
        code, obj = self.rest.request("GET", path)
        if code == 404:
            return None
        if code != 200 or not isinstance(obj, dict):
            raise ApiError(f"GET {path}: HTTP {code}: {obj}")
        return obj

    def create(self, path: str, body: Obj) -> Obj:
        return self._call("POST", path, body, ok=(200, 201))

    def namespace(self, name: str) -> None:
        code, obj = self.rest.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        if code not in (201, 409):
            raise ApiError(f"creating namespace {name}: HTTP {code}: {obj}")
        # The ServiceAccount admission plugin rejects pods until `default` exists.
        wait(lambda: self.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), 60, "default SA")

    def pipeline_run(self, ns: str, body: Obj) -> Obj:
        return self.create(f"{TEKTON}/v1/namespaces/{ns}/pipelineruns", body)

    def custom_run(self, ns: str, body: Obj) -> Obj:
        return self.create(f"{TEKTON}/v1beta1/namespaces/{ns}/customruns", body)

    def get_pipeline_run(self, ns: str, name: str) -> Obj | None:
        return self.get(f"{TEKTON}/v1/namespaces/{ns}/pipelineruns/{name}")

    def get_custom_run(self, ns: str, name: str) -> Obj | None:
        return self.get(f"{TEKTON}/v1beta1/namespaces/{ns}/customruns/{name}")

    def get_task_run(self, ns: str, name: str) -> Obj | None:
        return self.get(f"{TEKTON}/v1/namespaces/{ns}/taskruns/{name}")

    def pod(self, ns: str, name: str) -> Obj | None:
        return self.get(f"/api/v1/namespaces/{ns}/pods/{name}")

    def pod_log(self, ns: str, name: str, container: str, tail: int = 50) -> str:
        """The last lines of a container's log ("" while there is none)."""
        code, body = self.rest.request(
            "GET", f"/api/v1/namespaces/{ns}/pods/{name}/log?container={container}&tailLines={tail}"
        )
        if code != 200:
            return ""
        return body if isinstance(body, str) else json.dumps(body)  # a one-line JSON log comes back parsed

    def events(self, ns: str, name: str) -> list[Obj]:
        sel = urllib.parse.quote(f"involvedObject.name={name}")
        return (self.get(f"/api/v1/namespaces/{ns}/events?fieldSelector={sel}") or {}).get("items") or []


def condition(obj: Obj | None) -> Obj:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return conds[0] if conds else {}


def done(obj: Obj | None) -> bool:
    return condition(obj).get("status") in ("True", "False")


def results(run: Obj) -> dict[str, str]:
    return {r["name"]: r["value"] for r in (run.get("status") or {}).get("results") or []}
