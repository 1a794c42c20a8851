"""Every push mode's work pod in a real container on a real kubelet: the project image built from the
Containerfile, its non-root user, a read-only root filesystem and the workspace at its real path.

The controller runs as a host process (as `make run` does) with the locally built image as its work
image; a writer pod (the step image, also non-root) puts a model on a local-path PVC first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.images import ensure
from hack.images.publish import inspect
from tests.e2e.conftest import ControllerProcess, CustomRuns
from tests.fixtures.cluster import RealCluster
from tests.workpods.support import USER, host_controller, storage_left, write_model

pytestmark = pytest.mark.cluster

WS = [{"name": "model", "persistentVolumeClaim": {"claimName": "model"}}]
MODEL_FILES: dict[str, int | str] = {"config.json": '{"arch": "tiny"}', "weights.bin": 3 << 20}


@pytest.fixture(scope="module")
def images(real_cluster: RealCluster) -> dict[str, Any]:
    return ensure(["model-image-push", "step"], real_cluster.registry)


@pytest.fixture
def privileged_buildah() -> bool:
    return True


@pytest.fixture
async def controller(
    real_cluster: RealCluster,
    real_namespace: str,
    images: dict[str, Any],
    tmp_path: Path,
    privileged_buildah: bool,
) -> AsyncIterator[ControllerProcess]:
    async with host_controller(
        real_cluster,
        real_namespace,
        images["model-image-push"].ref,
        tmp_path / "controller.log",
        MODELPUSH_ALLOW_PRIVILEGED_BUILDAH=str(privileged_buildah).lower(),
    ) as ctl:
        yield ctl


@pytest.fixture
async def model_pvc(real_api: client.ApiClient, real_namespace: str, images: dict[str, Any]) -> str:
    """PVC `model` (default StorageClass, WaitForFirstConsumer) holding a small model under m/."""
    await write_model(client.CoreV1Api(real_api), real_namespace, images["step"].ref, MODEL_FILES)
    return "model"


@pytest.fixture
def crs(real_api: client.ApiClient, real_namespace: str) -> CustomRuns:
    return CustomRuns(real_api, real_namespace)


async def _push(
    crs: CustomRuns, name: str, params: dict[str, str], ws: list[dict[str, Any]]
) -> dict[str, Any]:
    await crs.create(name, params, ws)
    run = await crs.wait_done(name, limit=300)
    cond = run["status"]["conditions"][0]
    pods = await crs.pods(name)
    assert cond["status"] == "True", (cond, [p.get("status") for p in pods])
    return run


def _results(run: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["value"] for r in run["status"].get("results", [])}


async def _pod_of(crs: CustomRuns, run: str) -> dict[str, Any]:
    pods = await crs.pods(run)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def _assert_hardened(pod: dict[str, Any], privileged: bool = False) -> None:
    spec = pod["spec"]
    c = spec["containers"][0]
    # no RUN_AS_USER set: the image's USER (65532) runs, and the kubelet refuses it if it were root
    assert spec["securityContext"].get("runAsUser") in (None, USER)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"].get("privileged", False) is privileged
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


async def test_native_build_runs_non_root_read_only(
    real_cluster: RealCluster, controller: ControllerProcess, crs: CustomRuns, model_pvc: str
) -> None:
    image = f"{real_cluster.registry}/{crs.ns}/model:build"
    run = await _push(crs, "build", {"source": "dir:///workspace/model/m", "image": image}, WS)

    res = _results(run)
    assert inspect(image)["Digest"] == res["IMAGE_DIGEST"]
    # one layer per file over the default busybox base layer (controller/push/baselayer.py)
    assert len(inspect(image)["Layers"]) == len(MODEL_FILES) + 1
    pod = await _pod_of(crs, "build")
    _assert_hardened(pod)
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/workspace/model"]["readOnly"] is True


async def test_native_copy_runs_non_root_read_only(
    real_cluster: RealCluster, controller: ControllerProcess, crs: CustomRuns, images: dict[str, Any]
) -> None:
    src = images["step"]
    image = f"{real_cluster.registry}/{crs.ns}/copy:v1"
    run = await _push(crs, "copy", {"source": f"docker://{src.ref}", "image": image}, [])

    assert _results(run)["IMAGE_DIGEST"] == src.digest  # digests preserved
    _assert_hardened(await _pod_of(crs, "copy"))


async def test_skopeo_runs_non_root_read_only_with_its_tmpdir_on_the_pvc(
    real_cluster: RealCluster,
    controller: ControllerProcess,
    crs: CustomRuns,
    images: dict[str, Any],
    model_pvc: str,
) -> None:
    src = images["step"]
    image = f"{real_cluster.registry}/{crs.ns}/skopeo:v1"
    params = {"source": f"docker://{src.ref}", "image": image, "mode": "skopeo"}
    run = await _push(crs, "skopeo", params, WS)

    assert _results(run)["IMAGE_DIGEST"] == src.digest
    _assert_hardened(await _pod_of(crs, "skopeo"))
    assert await storage_left(crs.core, crs.ns, src.ref) == ""  # skopeo's tmpdir is gone from the PVC


async def test_buildah_runs_non_root_in_a_privileged_container(
    real_cluster: RealCluster,
    controller: ControllerProcess,
    crs: CustomRuns,
    images: dict[str, Any],
    model_pvc: str,
) -> None:
    image = f"{real_cluster.registry}/{crs.ns}/model:buildah"
    params = {"source": "dir:///workspace/model/m", "image": image, "mode": "buildah"}
    run = await _push(crs, "buildah", params, WS)

    assert inspect(image)["Digest"] == _results(run)["IMAGE_DIGEST"]
    _assert_hardened(await _pod_of(crs, "buildah"), privileged=True)
    # buildah's vfs storage (read-only layer directories included) is gone from the PVC
    assert await storage_left(crs.core, crs.ns, images["step"].ref) == ""


@pytest.mark.parametrize("privileged_buildah", [False])
async def test_buildah_without_privileges_fails_with_buildahs_reason(
    real_cluster: RealCluster, controller: ControllerProcess, crs: CustomRuns, model_pvc: str
) -> None:
    """Without ALLOW_PRIVILEGED_BUILDAH the pod is non-root with every capability dropped: buildah cannot
    make its user namespace, and the run says so instead of hanging or leaving the pod."""
    image = f"{real_cluster.registry}/{crs.ns}/model:unprivileged"
    params = {"source": "dir:///workspace/model/m", "image": image, "mode": "buildah"}
    await crs.create("unprivileged", params, WS)
    run = await crs.wait_done("unprivileged", limit=300)

    cond = run["status"]["conditions"][0]
    print(f"buildah without privileges: {cond['reason']}: {cond['message']}")
    # measured here: "buildah exited 1: Error during unshare(CLONE_NEWUSER): Operation not permitted"
    assert (cond["status"], cond["reason"]) == ("False", "PushFailed")
    assert "unshare(CLONE_NEWUSER): Operation not permitted" in cond["message"]
    pod = await _pod_of(crs, "unprivileged")
    assert pod["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
