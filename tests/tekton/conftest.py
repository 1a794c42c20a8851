"""Real Tekton pipelines controller + the real ModelImagePush controller on the shared local cluster.

Session fixtures: `tekton` (Tekton's CRDs/config installed, controller running out of cluster) and
`hang_registry` (never answers); the registry is the shared `registry` fixture (contract B).
Per test: `modelpush` (our controller as a real process, scoped to the test's namespace like tests/e2e
does, started after Tekton's CRDs are in) and `tk` (a `Tekton` helper for the test namespace).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from hack.tekton.launcher import TektonController
from tests.e2e.conftest import ControllerProcess
from tests.tekton.servers import HangServer
from tests.tekton.tkn import Tekton


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/tekton/test_pipelineruns" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.registry)


@pytest.fixture(scope="session")
async def tekton(cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TektonController]:
    ctl = TektonController(cluster.kubeconfig, tmp_path_factory.mktemp("tekton"))
    try:  # start inside: a readiness timeout must still stop what start() spawned
        await ctl.start()
        yield ctl
    finally:
        await ctl.stop()


@pytest.fixture
def modelpush_env() -> dict[str, str]:
    """Extra MODELPUSH_* settings for the controller; a test module overrides this fixture."""
    return {}


@pytest.fixture
async def modelpush(
    cluster, tekton: TektonController, namespace: str, tmp_path: Path, modelpush_env: dict[str, str]
) -> AsyncIterator[ControllerProcess]:
    # Depends on `tekton`: the real CustomRun CRD must be in place before our controller lists/watches.
    # Scoped to the test namespace (the tests/e2e helper sets MODELPUSH_NAMESPACES) so it never acts on
    # other tests' runs.
    proc = ControllerProcess(
        cluster.kubeconfig, namespace, tmp_path / "modelpush-controller.log", modelpush_env
    )
    proc.start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="session")
async def hang_registry() -> AsyncIterator[HangServer]:
    srv = HangServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def tk(
    kube_api: client.ApiClient, namespace: str, tekton: TektonController, modelpush: ControllerProcess
) -> AsyncIterator[Tekton]:
    helper = Tekton(kube_api, namespace)
    yield helper
    # On failure this is in the captured output: what Tekton and our controller said last.
    print(f"--- tekton controller log tail ---\n{tekton.tail(15)}")
    tail = "\n".join(modelpush.logs().splitlines()[-15:])
    print(f"--- modelpush controller log tail ---\n{tail}")
