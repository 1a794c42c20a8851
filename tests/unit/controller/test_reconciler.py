"""The reconciler as a table: a starting world (CustomRun, pod, Secret/ConfigMap present or not, API answers
such as 409 and 403) in, the API calls and the final status out. The API is a unit-level fake behind the
reconciler's `ClusterApi` Protocol; the real one is exercised by tests/e2e."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from controller.kube.client import ApiError
from controller.logic.patch import merge_patch
from controller.obs.metrics import Metrics
from controller.runtime.reconciler import Reconciler
from controller.settings import Settings
from tests.unit.controller.helpers import NOW, run_dict

Obj = dict[str, Any]
KEY = "ns1/push-1"
POD = "push-1-push-1"
RBAC_403 = ApiError(
    403,
    "Forbidden",
    'pods is forbidden: User "system:serviceaccount:ns1:ctl" cannot create resource "pods" in API group "" '
    'in the namespace "ns1"',
)
PSA_403 = ApiError(
    403, "Forbidden", 'pods "push-1-push-1" is forbidden: violates PodSecurity "restricted:latest"'
)


class FakeCache:
    def __init__(self, objs: list[Obj]) -> None:
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.objs.get((namespace, name))

    def update(self, obj: Obj) -> None:
        self.objs[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def forget(self, namespace: str, name: str) -> None:
        self.objs.pop((namespace, name), None)


@dataclass
class FakeApi:
    """Objects by (kind, name); `fail` maps a call name to the errors it raises, one per call, in order."""

    run: Obj
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    fail: dict[str, list[ApiError]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    log: str = ""

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        errors = self.fail.get(call.split(" ")[0])
        if errors:
            raise errors.pop(0)

    async def get_customrun(self, namespace: str, name: str) -> Obj:
        self._maybe_fail("get_customrun")
        return copy.deepcopy(self.run)

    async def patch_customrun_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        self._maybe_fail("patch_status")
        if patch["metadata"]["resourceVersion"] != self.run["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        status = self.run.get("status") or {}
        _apply(status, patch["status"])
        self.run["status"] = status
        self.run["metadata"]["resourceVersion"] = str(int(self.run["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.run)

    async def get_pod(self, namespace: str, name: str) -> Obj | None:
        self._maybe_fail(f"get_pod {name}")
        return self.objects.get(("pod", name))

    async def create_pod(self, manifest: Obj) -> Obj:
        name = manifest["metadata"]["name"]
        self._maybe_fail(f"create_pod {name}")
        if ("pod", name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'pods "{name}" already exists')
        pod = {**manifest, "status": {"phase": "Pending"}}
        self.objects[("pod", name)] = pod
        return pod

    async def delete_pod(self, namespace: str, name: str) -> None:
        self._maybe_fail(f"delete_pod {name}")
        self.objects.pop(("pod", name), None)

    async def pod_log_tail(self, namespace: str, name: str, container: str, lines: int = 20) -> str:
        self._maybe_fail(f"pod_log {name}")
        return self.log

    async def get_pvc(self, namespace: str, name: str) -> Obj | None:
        self._maybe_fail(f"get_pvc {name}")
        return self.objects.get(("pvc", name))

    async def get_pv(self, name: str) -> Obj | None:
        return None

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        self._maybe_fail(f"get_secret {name}")
        return self.objects.get(("secret", name))

    async def get_service_account(self, namespace: str, name: str) -> Obj | None:
        self._maybe_fail(f"get_service_account {name}")
        return self.objects.get(("serviceaccount", name))

    async def get_configmap(self, namespace: str, name: str) -> Obj | None:
        self._maybe_fail(f"get_configmap {name}")
        return self.objects.get(("configmap", name))

    async def get_defaults(self, namespace: str, name: str) -> Obj | None:
        self._maybe_fail(f"get_defaults {name}")
        return self.objects.get(("defaults", name))

    async def create_event(self, run: Obj, kind: str, reason: str, message: str, component: str) -> None:
        self.calls.append(f"event {reason}")


def _apply(target: Obj, patch: Obj) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _apply(target[k], v)
        else:
            target[k] = v


PVC = {"metadata": {"name": "model-pvc"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
SECRET = {"metadata": {"name": "creds"}, "data": {".dockerconfigjson": "e30="}}


def embedded(params: dict[str, Any], spec_params: dict[str, Any]) -> Obj:
    body = run_dict(params)
    del body["spec"]["customRef"]
    body["spec"]["customSpec"] = {
        "apiVersion": "modelpush.dev/v1alpha1",
        "kind": "ModelImagePush",
        "spec": {"params": [{"name": k, "value": v} for k, v in spec_params.items()]},
    }
    return body


def running(body: Obj, extra: dict[str, Any]) -> Obj:
    body["status"] = {
        "conditions": [
            {
                "type": "Succeeded",
                "status": "Unknown",
                "reason": "Running",
                "message": f"Pod {POD} is running (attempt 1)",
                "lastTransitionTime": "2026-01-02T03:04:00Z",
            }
        ],
        "startTime": "2026-01-02T03:04:00Z",
        "extraFields": {"attempt": 1, "podName": POD, "mode": "build", **extra},
    }
    return body


def pod_obj(phase: str, uid: str = "uid-1") -> Obj:
    return {
        "metadata": {"name": POD, "namespace": "ns1", "ownerReferences": [{"uid": uid}]},
        "spec": {"containers": [{"name": "push"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "push", "state": {"running": {"startedAt": "2026-01-02T03:03:00Z"}}}
            ]
            if phase == "Running"
            else [],
        },
    }


IMG = {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/a/m:v1"}


def malformed(body: Obj) -> Obj:
    """Fields a CustomRun cannot mean: the status ones get past the CRD schema (tests/e2e/test_malformed),
    the spec ones only where an older or hand-made CRD has no schema."""
    body["spec"]["retries"] = "twice"
    body["spec"]["params"].append({"value": "orphan"})
    body.setdefault("status", {})["retriesStatus"] = {"attempt": 1}
    return body


@dataclass
class Row:
    id: str
    run: Obj
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    fail: dict[str, list[ApiError]] = field(default_factory=dict)
    cached_pod: Obj | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    # expected
    reason: str = ""
    status: str = ""
    calls: list[str] = field(default_factory=list)  # must appear, in this order
    no_calls: list[str] = field(default_factory=list)
    raises: type[Exception] | None = None
    check: Any = None


ROWS = [
    Row(
        "the ServiceAccount's tekton.dev/docker-* Secret is read and mounted; its unused pull secret is not",
        run_dict(IMG),
        {
            ("pvc", "model-pvc"): PVC,
            ("serviceaccount", "default"): {
                "metadata": {"name": "default"},
                "secrets": [{"name": "robot"}],
                "imagePullSecrets": [{"name": "pull"}],
            },
            ("secret", "robot"): {
                "metadata": {"name": "robot", "annotations": {"tekton.dev/docker-0": "127.0.0.1:5000"}},
                "type": "kubernetes.io/basic-auth",
                "data": {"username": "dQ==", "password": "cA=="},
            },
            ("secret", "pull"): {
                "metadata": {"name": "pull"},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": "eyJhdXRocyI6IHsicS5pbyI6IHt9fX0="},  # {"auths": {"q.io": {}}}
            },
        },
        reason="Started",
        status="Unknown",
        calls=["get_service_account default", "get_secret robot", "get_secret pull", f"create_pod {POD}"],
        check=lambda api: (
            [
                s["secret"]["name"]
                for v in api.objects[("pod", POD)]["spec"]["volumes"]
                if v["name"] == "registry-auth"
                for s in v["projected"]["sources"]
            ]
            == ["robot"]
        ),
    ),
    Row(
        "plain run plans its pod",
        run_dict(IMG),
        {("pvc", "model-pvc"): PVC},
        reason="Started",
        status="Unknown",
        calls=["get_pvc model-pvc", f"create_pod {POD}", "patch_status"],
    ),
    Row(
        "embedded customSpec names a missing Secret: it is looked up (not a pod stuck in ContainerCreating)",
        embedded(IMG, {"registry-secret": "creds"}),
        {("pvc", "model-pvc"): PVC},
        settings={"missing_object_grace_seconds": 0},
        reason="MissingSecret",
        status="False",
        calls=["get_secret creds", "patch_status"],
        no_calls=[f"create_pod {POD}"],
    ),
    Row(
        "embedded customSpec CA ConfigMap with only ca.crt: --ca-file names ca.crt",
        embedded(IMG, {"ca-bundle": "my-ca"}),
        {
            ("pvc", "model-pvc"): PVC,
            ("configmap", "my-ca"): {"metadata": {"name": "my-ca"}, "data": {"ca.crt": "x"}},
        },
        reason="Started",
        status="Unknown",
        calls=["get_configmap my-ca", f"create_pod {POD}"],
        check=lambda api: (
            "/etc/modelpush/ca/ca.crt" in api.objects[("pod", POD)]["spec"]["containers"][0]["args"]
        ),
    ),
    Row(
        "named defaults give the Secret name: it is looked up",
        (lambda b: (b["spec"]["customRef"].update(name="d"), b)[1])(run_dict({"image": IMG["image"]})),
        {
            ("pvc", "model-pvc"): PVC,
            ("defaults", "d"): {
                "spec": {
                    "params": [
                        {"name": "source", "value": IMG["source"]},
                        {"name": "registry-secret", "value": "creds"},
                    ]
                }
            },
            ("secret", "creds"): SECRET,
        },
        reason="Started",
        status="Unknown",
        calls=["get_defaults d", "get_secret creds", f"create_pod {POD}"],
    ),
    Row(
        "409 on create: the existing pod is adopted, not duplicated",
        run_dict(IMG),
        {("pvc", "model-pvc"): PVC, ("pod", POD): pod_obj("Running")},
        settings={"progress_interval_seconds": 0},
        reason="Running",
        status="Unknown",
        calls=[f"create_pod {POD}", f"get_pod {POD}", "patch_status"],
    ),
    Row(
        "409 on the status patch: the run is read again and the decision recomputed",
        run_dict(IMG),
        {("pvc", "model-pvc"): PVC},
        fail={"patch_status": [ApiError(409, "Conflict", "modified")]},
        reason="Pending",  # recomputed from the fresh run and the pod created on the first pass
        status="Unknown",
        calls=[f"create_pod {POD}", "patch_status", "get_customrun", "patch_status"],
        check=lambda api: api.calls.count(f"create_pod {POD}") == 1,
    ),
    Row(
        "403 from admission (PodSecurity) is final PodRejected with the server's message",
        run_dict(IMG),
        {("pvc", "model-pvc"): PVC},
        fail={"create_pod": [PSA_403]},
        reason="PodRejected",
        status="False",
        check=lambda api: "violates PodSecurity" in api.run["status"]["conditions"][0]["message"],
    ),
    Row(
        "403 from RBAC is not final: an Event, and the key is retried with backoff",
        run_dict(IMG),
        {("pvc", "model-pvc"): PVC},
        fail={"create_pod": [RBAC_403]},
        reason="Pending",
        status="Unknown",
        calls=[f"create_pod {POD}", "patch_status", "event PodCreateForbidden"],
        check=lambda api: (
            "may not create pod" in api.run["status"]["conditions"][0]["message"]
            and api.run["status"]["extraFields"]["createForbidden"] == 1
        ),
    ),
    Row(
        "defaults object deleted mid-run: the snapshot keeps the run and its pod going",
        (lambda b: (b["spec"]["customRef"].update(name="gone"), running(b, {"params": IMG}))[1])(
            run_dict({"image": IMG["image"]})
        ),
        cached_pod=pod_obj("Running"),
        settings={"progress_interval_seconds": 0},
        no_calls=["get_defaults gone", f"delete_pod {POD}", "patch_status"],
    ),
    Row(
        "progress is read from the pod log and shown",
        running(run_dict(IMG), {"params": IMG}),
        cached_pod=pod_obj("Running"),
        log=json.dumps(
            {
                "event": "progress",
                "bytes_done": 2**29,
                "bytes_total": 2**30,
                "rate_bps": 100 * 2**20,
                "eta_s": 5.1,
            }
        )
        + "\n",
        reason="Running",
        status="Unknown",
        calls=[f"pod_log {POD}", "patch_status"],
        check=lambda api: (
            api.run["status"]["extraFields"]["progress"]
            == {
                "bytesDone": 536870912,
                "bytesTotal": 1073741824,
                "percent": 50.0,
                "mibPerSecond": 100.0,
                "etaSeconds": 5,
                "updatedAt": "2026-01-02T03:04:05Z",
            }
            and "50.0% of 1.0 GiB at 100.0 MiB/s, ETA 5s" in api.run["status"]["conditions"][0]["message"]
        ),
    ),
    Row(
        "no pods/log (or no line yet): the run goes on without progress",
        running(run_dict(IMG), {"params": IMG}),
        cached_pod=pod_obj("Running"),
        fail={"pod_log": [ApiError(404, "NotFound", "the server could not find the requested resource")]},
        no_calls=["patch_status"],
    ),
    Row(
        "cancel with the pod running: the pod is deleted and the run ends",
        (lambda b: (b["spec"].update(status="RunCancelled"), running(b, {"params": IMG}))[1])(run_dict(IMG)),
        cached_pod=pod_obj("Running"),
        reason="CustomRunCancelled",
        status="False",
        calls=[f"delete_pod {POD}", "patch_status"],
    ),
    # a CustomRun of ours that cannot be read ends with a condition naming its bad fields, never in silence
    Row(
        "malformed (retries not a number, a nameless param, retriesStatus not a list): InvalidCustomRun",
        malformed(run_dict({**IMG, "token": "s3cr3t"})),
        {("pvc", "model-pvc"): PVC},
        reason="InvalidCustomRun",
        status="False",
        calls=["patch_status", "event Failed"],
        no_calls=[f"create_pod {POD}", "get_pvc model-pvc"],
        check=lambda api: (
            (m := api.run["status"]["conditions"][0]["message"]).startswith("The CustomRun cannot be read: ")
            and "spec.retries: Input should be a valid integer" in m
            and "spec.params[3].name: Field required" in m
            and "status.retriesStatus: Input should be a valid list" in m
            and "Create a corrected CustomRun" in m
            and "s3cr3t" not in m  # values are never echoed: a param may hold a credential
            and api.run["status"]["completionTime"] == "2026-01-02T03:04:05Z"
        ),
    ),
    Row(
        "malformed while its pod runs (an edit let through): the pod is deleted, the run ends",
        malformed(running(run_dict(IMG), {"params": IMG})),
        cached_pod=pod_obj("Running"),
        reason="InvalidCustomRun",
        status="False",
        calls=[f"delete_pod {POD}", "patch_status"],
    ),
    Row(
        "malformed and already done: left alone",
        malformed(
            run_dict(
                IMG,
                status={"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]},
            )
        ),
        reason="Succeeded",
        status="True",
        no_calls=["patch_status"],
    ),
    Row(
        "malformed and not ours (another custom task's kind): ignored",
        (lambda b: (b["spec"]["customRef"].update(kind="Other"), b)[1])(malformed(run_dict(IMG))),
        no_calls=["patch_status"],
        check=lambda api: "conditions" not in api.run["status"],
    ),
    Row(
        "a customRef that is not an object is not ours: ignored, nothing crashes",
        (lambda b: (b["spec"].update(customRef="modelpush.dev/v1alpha1"), b)[1])(run_dict(IMG)),
        no_calls=["patch_status"],
        check=lambda api: "status" not in api.run,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_reconcile_table(row: Row) -> None:
    api = FakeApi(run=copy.deepcopy(row.run), objects=copy.deepcopy(row.objects), fail=row.fail, log=row.log)
    runs = FakeCache([api.run])
    pods = FakeCache([row.cached_pod] if row.cached_pod else [])
    settings = Settings(leader_election=False, **row.settings)
    rec = Reconciler(api, runs, pods, settings, Metrics(), clock=lambda: NOW)
    if row.raises is not None:
        with pytest.raises(row.raises):
            await rec.reconcile(KEY)
    else:
        await rec.reconcile(KEY)
    for task in list(rec._event_tasks):
        await task
    it = iter(api.calls)
    for want in row.calls:
        assert any(c == want for c in it), f"{want!r} missing or out of order in {api.calls}"
    for unwanted in row.no_calls:
        assert unwanted not in api.calls, api.calls
    if row.reason:
        cond = api.run["status"]["conditions"][0]
        assert (cond["status"], cond["reason"]) == (row.status, row.reason), cond
    if row.check is not None:
        assert row.check(api), json.dumps(api.run.get("status"), indent=1)[:2000]


def test_clock_is_injected() -> None:
    fixed = datetime(2030, 1, 1, tzinfo=NOW.tzinfo)
    rec = Reconciler(
        FakeApi(run={}),
        FakeCache([]),
        FakeCache([]),
        Settings(leader_election=False),
        Metrics(),
        clock=lambda: fixed,
    )
    assert rec.now() == fixed
    assert merge_patch({}, {}) == {}


async def test_progress_read_waits_for_a_free_log_slot_without_holding_the_worker() -> None:
    """Every log slot busy (other workers reading slow pod logs): this reconcile reads nothing, writes
    nothing new and comes back in 1-2 s, instead of queueing on the slot while new runs wait for pods."""
    body = running(run_dict(IMG), {"params": IMG})
    api = FakeApi(run=copy.deepcopy(body), log='{"event": "progress", "bytes_done": 1, "bytes_total": 2}\n')
    settings = Settings(leader_election=False, max_concurrent_reconciles=8)
    rec = Reconciler(
        api, FakeCache([api.run]), FakeCache([pod_obj("Running")]), settings, Metrics(), lambda: NOW
    )
    async with rec._log_slots, rec._log_slots:  # 8 workers: 2 slots, both taken
        requeue = await asyncio.wait_for(rec.reconcile(KEY), 5)  # waiting on the slot would time out
    assert f"pod_log {POD}" not in api.calls and "patch_status" not in api.calls, api.calls
    assert requeue is not None and 1.0 <= requeue <= 2.1
    assert await rec.reconcile(KEY) is not None and f"pod_log {POD}" in api.calls  # a free slot: read
