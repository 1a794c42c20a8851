"""Supervised background tasks (issue 10, point 5): a broken watch line or handler never ends an informer, a
crashing elector gives up leadership first, and the controller reports any root task that ends so the
process exits non-zero. The API client here is a stub of the two calls the informer and elector make."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.kube.client import ApiError
from controller.kube.informer import Informer
from controller.kube.lease import LeaderElector
from controller.obs.metrics import Metrics
from controller.runtime.controller import Controller
from controller.settings import Settings


def _pod(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)}}


class StubClient:
    """list answers `items`; each watch plays the next script (a list of events or raw bad lines)."""

    def __init__(self, items: list[dict[str, Any]], scripts: list[list[Any]]) -> None:
        self.items = items
        self.scripts = scripts
        self.lists = 0

    async def request(self, method: str, path: str, query: Any = None, body: Any = None, **_: Any) -> Any:
        self.lists += 1
        return {"metadata": {"resourceVersion": "10"}, "items": list(self.items)}

    async def watch(self, path: str, query: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        script = self.scripts.pop(0) if self.scripts else []
        for event in script:
            if isinstance(event, bytes):
                yield json.loads(event)  # what KubeClient.watch does with a line: a bad one raises here
            else:
                yield event
        if not self.scripts:
            await asyncio.sleep(3600)  # an idle watch


async def _until(check: Any, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not check():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def test_bad_watch_line_relists_instead_of_ending_the_informer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.kube.informer.random.random", lambda: 0.0)  # shortest backoff
    client = StubClient(
        [_pod("a", 5)],
        [
            [{"type": "ADDED", "object": _pod("b", 11)}, b'{"type": "MODIFIED", "object": {truncated'],
            [{"type": "ADDED", "object": _pod("c", 12)}],
        ],
    )
    seen: list[tuple[str, str]] = []
    inf = Informer(client, "/api/v1/pods", lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    try:
        await _until(lambda: ("ADDED", "c") in seen)
        assert not task.done()
        assert client.lists == 2  # the broken stream was followed by a relist
        assert inf.synced.is_set() and inf.get("ns", "c") is not None
    finally:
        task.cancel()


async def test_handler_error_does_not_end_the_watch() -> None:
    client = StubClient(
        [], [[{"type": "ADDED", "object": _pod("boom", 11)}, {"type": "ADDED", "object": _pod("ok", 12)}]]
    )
    seen: list[str] = []

    def handler(kind: str, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == "boom":
            raise RuntimeError("handler bug")
        seen.append(obj["metadata"]["name"])

    inf = Informer(client, "/api/v1/pods", handler)  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    try:
        await _until(lambda: "ok" in seen)
        assert not task.done() and inf.get("ns", "boom") is not None
    finally:
        task.cancel()


async def test_crashing_elector_releases_leading_first(monkeypatch: pytest.MonkeyPatch) -> None:
    changes: list[bool] = []
    elector = LeaderElector(None, "ns", "lease", "me", 15, 10, 0.01, changes.append)  # type: ignore[arg-type]
    answers: list[Any] = [True, RuntimeError("bug in renew")]

    async def renew() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    monkeypatch.setattr(elector, "try_acquire_or_renew", renew)
    with pytest.raises(RuntimeError):
        await elector.run()
    assert changes == [True, False] and not elector.is_leader


async def test_api_errors_keep_the_elector_running(monkeypatch: pytest.MonkeyPatch) -> None:
    elector = LeaderElector(None, "ns", "lease", "me", 15, 10, 0.01, lambda _: None)  # type: ignore[arg-type]
    calls = 0

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        raise ApiError(500, "InternalError", "etcd timeout")

    monkeypatch.setattr(elector, "try_acquire_or_renew", renew)
    task = asyncio.create_task(elector.run())
    await _until(lambda: calls >= 3)
    assert not task.done()
    task.cancel()


@pytest.mark.parametrize("victim", ["informer", "elector", "server"])
async def test_controller_reports_a_dead_root_task(victim: str) -> None:
    settings = Settings(
        leader_election=True, metrics_host="127.0.0.1", metrics_port=0, max_concurrent_reconciles=1
    )
    ctl = Controller(settings, StubClient([], []), Metrics())  # type: ignore[arg-type]
    died = asyncio.Event()

    async def lives() -> None:
        await asyncio.sleep(3600)

    async def dies() -> None:
        await died.wait()
        raise RuntimeError("it broke")

    assert ctl.elector is not None
    for inf in ctl.run_informers + ctl.pod_informers:
        inf.run = dies if victim == "informer" and inf in ctl.pod_informers else lives  # type: ignore[method-assign]
    ctl.elector.run = dies if victim == "elector" else lives  # type: ignore[method-assign]
    if victim == "server":
        ctl.server.serve = dies  # type: ignore[method-assign]
    await ctl.start()
    try:
        supervisor = asyncio.create_task(ctl.supervise())
        await asyncio.sleep(0.05)
        assert not supervisor.done()  # healthy: nothing ends
        died.set()
        reason = await asyncio.wait_for(supervisor, 5)
        name = {"informer": "informer pods/*", "elector": "leader election", "server": "health server"}[
            victim
        ]
        assert reason == f"{name} failed: RuntimeError: it broke"
    finally:
        await ctl.stop(grace=1)
