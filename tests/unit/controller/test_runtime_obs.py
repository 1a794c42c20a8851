import asyncio
import json
import logging

import pytest

from controller.logic.patch import merge_patch
from controller.obs.log import JsonFormatter
from controller.obs.metrics import Metrics
from controller.runtime.queue import ShutDown, WorkQueue
from controller.settings import Settings


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"x": {"k": 1, "j": 2}}, {"x": {"k": 1}}, {"x": {"j": None}}),
        ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
        ({}, {"c": [{"type": "Succeeded"}]}, {"c": [{"type": "Succeeded"}]}),
    ],
)
def test_merge_patch(old: dict, new: dict, patch: dict) -> None:
    assert merge_patch(old, new) == patch


async def test_queue_dedupes_and_serialises_a_key() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = await q.get()
    assert k == "a"
    q.add("a")  # while processing: remembered, not handed out twice
    k2 = await q.get()
    assert k2 == "b"
    assert len(q) == 0
    q.done("a")
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.done("a")
    q.done("b")


async def test_queue_add_after_keeps_earliest_and_shutdown() -> None:
    q = WorkQueue()
    q.add_after("a", 0.05)
    q.add_after("a", 10)
    assert await asyncio.wait_for(q.get(), 2) == "a"
    q.done("a")
    delay = q.add_rate_limited("b")
    assert 0.25 <= delay <= 0.5
    assert 0.5 <= q.add_rate_limited("b") <= 1.0
    q.forget("b")
    await q.shutdown()
    with pytest.raises(ShutDown):
        await q.get()


def test_json_log_line_has_keys_in_order() -> None:
    rec = logging.LogRecord("controller", logging.INFO, __file__, 1, "Created pod", None, None)
    rec.fields = {
        "reason": "Started",
        "namespace": "ns",
        "name": "r",
        "attempt": 1,
        "pod": "r-push-1",
        "x": 2,
    }
    line = json.loads(JsonFormatter().format(rec))
    assert list(line)[:8] == ["ts", "level", "msg", "namespace", "name", "attempt", "pod", "reason"]
    assert line["msg"] == "Created pod" and line["level"] == "info" and line["x"] == 2


def test_metrics_names() -> None:
    m = Metrics()
    m.runs.labels(outcome="succeeded", reason="Succeeded", mode="build").inc()
    text = m.render().decode()
    for name in (
        "modelpush_runs_total",
        "modelpush_run_duration_seconds",
        "modelpush_pushed_bytes_total",
        "modelpush_evictions_total",
        "modelpush_active_pods",
        "modelpush_reconcile_total",
        "modelpush_reconcile_errors_total",
        "modelpush_reconcile_time_seconds",
        "modelpush_workqueue_depth",
        "modelpush_leader_election_master_status",
        "modelpush_api_requests_total",
    ):
        assert f"# HELP {name.removesuffix('_total')}" in text or f"# HELP {name}" in text, name


def test_settings_env_over_file(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(
        "work_image: example.com/a/b:1\nnamespaces: [a, b]\ncompat_storage_floor: 2Gi\nmetrics_port: 1\n"
    )
    monkeypatch.setenv("MODELPUSH_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("MODELPUSH_METRICS_PORT", "9999")
    monkeypatch.setenv("MODELPUSH_INSECURE_REGISTRIES", "127.0.0.1:5000,reg:1")
    s = Settings()
    assert s.work_image == "example.com/a/b:1"
    assert s.namespaces == ["a", "b"]
    assert s.compat_storage_floor == 2 * 1024**3
    assert s.metrics_port == 9999
    assert s.insecure_registries == ["127.0.0.1:5000", "reg:1"]


def test_settings_defaults(monkeypatch) -> None:
    monkeypatch.delenv("MODELPUSH_CONFIG_FILE", raising=False)
    s = Settings()
    assert s.work_image == "quay.io/modelpush/model-image-push:latest"
    assert s.namespaces == [] and s.leader_election and s.default_timeout_seconds == 3600


async def test_queue_urgent_keys_jump_the_line() -> None:
    q = WorkQueue()
    for k in ("a", "b", "c"):
        q.add(k)
    q.add("c", urgent=True)  # already queued: moved ahead
    q.add("d", urgent=True)
    assert [await q.get() for _ in range(2)] == ["c", "d"]
    q.add("c", urgent=True)  # while processing: comes back urgent after done()
    q.done("c")
    assert await q.get() == "c"
    assert [await q.get() for _ in range(2)] == ["a", "b"]


async def test_queue_first_reconciles_go_before_echoes_and_after_urgent_keys() -> None:
    """A burst of new runs gets its pods before the workers look at our own status writes echoed back."""
    q = WorkQueue()
    q.add("echo-1")
    q.add("new-1", first=True)
    q.add("echo-2")
    q.add("new-2", first=True)
    q.add("finished", urgent=True)
    q.add("echo-2", first=True)  # queued already: moves up to the better lane, once
    q.add("new-1")  # a worse lane never moves a key down
    assert len(q) == 5
    assert [await q.get() for _ in range(5)] == ["finished", "new-1", "new-2", "echo-2", "echo-1"]
    q.add("new-1", first=True)  # while processing: comes back in the best lane asked for
    q.add("new-1")
    q.add("echo-3")
    q.done("new-1")
    assert [await q.get() for _ in range(2)] == ["new-1", "echo-3"]
    for k in ("finished", "new-1", "new-2", "echo-1", "echo-2", "echo-3"):
        q.done(k)
    assert len(q) == 0


async def test_queue_workers_that_prefer_new_runs_keep_them_moving_past_finished_pods() -> None:
    """A wave of finishing pods (URGENT) must not stall the runs still waiting for a pod (FIRST)."""
    q = WorkQueue()
    for k in ("done-1", "done-2"):
        q.add(k, urgent=True)
    for k in ("new-1", "new-2"):
        q.add(k, first=True)
    q.add("echo")
    assert await q.get(first_before_urgent=True) == "new-1"
    assert await q.get() == "done-1"
    assert await q.get(first_before_urgent=True) == "new-2"
    assert await q.get(first_before_urgent=True) == "done-2"  # no FIRST left: URGENT next, then NORMAL
    assert await q.get(first_before_urgent=True) == "echo"


class _CountingClient:
    """Answers GETs with a fresh object each time and counts them (what reaches the API server)."""

    def __init__(self) -> None:
        self.gets: list[str] = []

    async def request(self, method: str, path: str, **_: object) -> dict[str, object]:
        self.gets.append(path)
        return {"metadata": {"name": path.rsplit("/", 1)[1]}, "n": len(self.gets)}


async def test_service_account_is_read_once_per_ttl_per_namespace() -> None:
    from controller.kube.api import SERVICE_ACCOUNT_TTL_SECONDS, Api

    now = [100.0]
    kube = _CountingClient()
    api = Api(kube, clock=lambda: now[0])  # type: ignore[arg-type]
    first = await api.get_service_account("a", "default")
    assert await api.get_service_account("a", "default") is first  # a burst of runs: one GET
    assert (await api.get_service_account("b", "default"))["n"] == 2  # another namespace: its own
    now[0] += SERVICE_ACCOUNT_TTL_SECONDS
    assert (await api.get_service_account("a", "default"))["n"] == 3  # expired: read again
    assert len(kube.gets) == 3


async def test_controller_queues_never_reconciled_runs_in_the_first_lane() -> None:
    """The CustomRun watch tells a new run (no condition yet) from the echo of our own status write, and a
    finished pod from any other pod change."""
    from controller.runtime.controller import Controller
    from tests.unit.controller.helpers import run_dict
    from tests.unit.controller.test_supervision import StubClient

    ctl = Controller(Settings(leader_election=False), StubClient([], []), Metrics())  # type: ignore[arg-type]
    started = {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Started"}]}
    ctl._on_run("MODIFIED", run_dict(name="echo", status=started))
    ctl._on_run("ADDED", run_dict(name="new"))
    owner = {"kind": "CustomRun", "name": "done"}
    ctl._on_pod(
        "MODIFIED",
        {"metadata": {"namespace": "ns1", "ownerReferences": [owner]}, "status": {"phase": "Succeeded"}},
    )
    assert [await ctl.queue.get() for _ in range(3)] == ["ns1/done", "ns1/new", "ns1/echo"]
