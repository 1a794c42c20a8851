"""The in-cluster Tekton (release manifests, webhook, affinity assistant) on the session's real nodes, and
the ModelImagePush controller under test as a host process (as `make run` does) whose work pods run the
locally built project image on the real kubelets.

Session fixtures: `tekton` (the real cluster with Tekton installed; idempotent), `images` (the project and
step images in the cluster's registry) and `hang_registry` (never answers; on the pod network's gateway so
work pods reach it). Per test: `modelpush` (our controller, scoped to the test's namespace like tests/e2e
does) and `tk` (a `Tekton` helper for the test namespace).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.images import ensure
from hack.localcluster.realcluster import RealCluster
from tests.e2e.conftest import ControllerProcess
from tests.tekton.servers import HangServer, gateway
from tests.tekton.tkn import Tekton


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/tekton/test_" in str(item.fspath) and "test_manifests" not in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def tekton(real_cluster: RealCluster) -> RealCluster:
    real_cluster.install_tekton()  # idempotent: an installed Tekton is only waited for
    return real_cluster


@pytest.fixture(scope="session")
def images(real_cluster: RealCluster) -> dict[str, Any]:
    return ensure(["model-image-push", "step"], real_cluster.registry)


@pytest.fixture
def modelpush_env() -> dict[str, str]:
    """Extra MODELPUSH_* settings for the controller; a test module overrides this fixture."""
    return {}


@pytest.fixture
async def modelpush(
    tekton: RealCluster,
    images: dict[str, Any],
    real_namespace: str,
    tmp_path: Path,
    modelpush_env: dict[str, str],
) -> AsyncIterator[ControllerProcess]:
    # Scoped to the test namespace (MODELPUSH_NAMESPACES) so it never acts on other tests' runs.
    env = {
        "MODELPUSH_WORK_IMAGE": images["model-image-push"].ref,
        "MODELPUSH_INSECURE_REGISTRIES": tekton.registry,
        **modelpush_env,
    }
    proc = ControllerProcess(tekton.kubeconfig, real_namespace, tmp_path / "modelpush-controller.log", env)
    proc.start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="session")
async def hang_registry(real_cluster: RealCluster) -> AsyncIterator[HangServer]:
    srv = HangServer(gateway(real_cluster))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def tk(
    real_api: client.ApiClient, real_namespace: str, tekton: RealCluster, modelpush: ControllerProcess
) -> AsyncIterator[Tekton]:
    helper = Tekton(real_api, real_namespace)
    yield helper
    # On failure this is in the captured output: what Tekton and our controller said last.
    try:
        said = tekton.local.kubectl(
            "-n", "tekton-pipelines", "logs", "deploy/tekton-pipelines-controller", "--tail=15"
        )  # fmt: skip
    except Exception as err:  # the tail is a diagnostic only; the test's own outcome stands
        said = f"(no log: {err})"
    print(f"--- tekton controller log tail ---\n{said}")
    tail = "\n".join(modelpush.logs().splitlines()[-15:])
    print(f"--- modelpush controller log tail ---\n{tail}")
