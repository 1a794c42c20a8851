"""CustomRuns driven through the real controller process, its work pods on the real nodes, and registries."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import (
    WS,
    CustomRuns,
    cond,
    install_modelimagepush_crd,
    model_pvc,
    push_dir,
    results,
    skopeo_digest,
    write_model,
)
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


async def test_build_mode_pushes_verified_image(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace
) -> None:
    ctl = await controllers()
    await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/tiny:v1"
    await crs.create("build-1", {"source": "dir:///workspace/model", "image": image}, WS)
    run = await crs.wait_done("build-1")
    c = cond(run)
    assert (c["status"], c["reason"]) == ("True", "Succeeded"), c
    res = results(run)
    assert res["IMAGE_DIGEST"].startswith("sha256:")
    assert res["IMAGE_URL"].endswith("@" + res["IMAGE_DIGEST"])
    assert int(res["IMAGE_SIZE"]) > 3 * 256 * 1024 and int(res["LAYERS"]) >= 4
    assert await skopeo_digest(image) == res["IMAGE_DIGEST"]
    st = run["status"]
    assert st["startTime"] and st["completionTime"]
    assert st["extraFields"]["podName"] == "build-1-push-1" and st["extraFields"]["mode"] == "build"
    pods = await crs.pods("build-1")
    assert [p["metadata"]["name"] for p in pods] == ["build-1-push-1"]
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert (
        owner["kind"] == "CustomRun"
        and owner["controller"] is True
        and owner["uid"] == run["metadata"]["uid"]
    )
    limits = pods[0]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["ephemeral-storage"] == "256Mi"
    reasons = {e["reason"] for e in await crs.events("build-1")}
    assert {"Started", "Succeeded"} <= reasons
    want = 'modelpush_runs_total{mode="build",outcome="succeeded",reason="Succeeded"} 1.0'

    async def counted() -> str | None:
        text = await ctl.metrics()
        return text if want in text else None

    text = await wait_for(counted, 30, "runs counter")
    assert re.search(r'^modelpush_pushed_bytes_total\{mode="build"\} [1-9]', text, re.M)


async def test_copy_mode(controllers, crs: CustomRuns, gateway_registry, tmp_path, real_namespace) -> None:
    await controllers()
    src = f"{gateway_registry.host}/{real_namespace}/src:v1"
    write_model(tmp_path / "m")
    seeded = await push_dir(tmp_path / "m", src, gateway_registry.host)
    dst = f"{gateway_registry.host}/{real_namespace}/copied:v1"
    await crs.create("copy-1", {"source": f"docker://{src}", "image": dst})
    run = await crs.wait_done("copy-1")
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    assert results(run)["IMAGE_DIGEST"] == seeded["digest"] == await skopeo_digest(dst)
    assert run["status"]["extraFields"]["mode"] == "copy"


@pytest.mark.parametrize(
    ("params", "reason", "needles"),
    [
        (
            {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "mode": "fast"},
            "InvalidParams",
            ["'mode'", "'fast'", "auto, build, copy, buildah, skopeo"],
        ),
        (
            {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "colour": "red"},
            "InvalidParams",
            ["unknown param 'colour'"],
        ),
        (
            {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1", "registry-secret": "nope"},
            "MissingSecret",
            ["'nope'", "not found"],
        ),
        ({"source": "dir:///workspace/other", "image": "127.0.0.1:1/a/b:1"}, "MissingWorkspace", ["'other'"]),
    ],
)
async def test_rejected_before_any_pod(
    controllers,
    crs: CustomRuns,
    real_pvc,
    real_namespace,
    params: dict[str, Any],
    reason: str,
    needles: list[str],
) -> None:
    await controllers()
    await real_pvc(real_namespace, "model")
    await crs.create("bad-1", params, WS, retries=2)
    run = await crs.wait_done("bad-1", limit=60)
    c = cond(run)
    assert (c["status"], c["reason"]) == ("False", reason), c
    for needle in needles:
        assert needle in c["message"], c["message"]
    assert await crs.pods() == []
    assert "retriesStatus" not in run["status"] or run["status"]["retriesStatus"] == []


async def test_other_custom_tasks_are_ignored(controllers, crs: CustomRuns) -> None:
    await controllers()
    body = {"source": "dir:///workspace/model", "image": "127.0.0.1:1/a/b:1"}
    created = await crs.create("foreign", body, customRef={"apiVersion": "example.dev/v1", "kind": "Wait"})
    await crs.create("ours-invalid", {**body, "mode": "fast"})
    # one watch stream delivers both in resourceVersion order: by the time ours is done, foreign was seen
    ours = await crs.wait_done("ours-invalid", limit=60)
    assert cond(ours)["reason"] == "InvalidParams"
    foreign = await crs.get("foreign")
    assert foreign["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"], foreign
    assert not foreign.get("status")
    assert await crs.events("foreign") == [] and await crs.pods("foreign") == []
    assert await crs.events("ours-invalid"), "the controller records Events on the runs it owns"


async def test_buildah_mode_storage_on_pvc(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace
) -> None:
    await controllers()
    d = await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/buildah:v1"
    params = {"source": "dir:///workspace/model", "image": image, "mode": "buildah", "model-size": "1Mi"}
    await crs.create("buildah-1", params, WS)
    run = await crs.wait_done("buildah-1", limit=180)
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    assert await skopeo_digest(image) == results(run)["IMAGE_DIGEST"]
    pod = (await crs.pods("buildah-1"))[0]
    c = pod["spec"]["containers"][0]
    assert c["resources"]["limits"]["ephemeral-storage"] == "1Gi"  # ratio × 1Mi is under the floor
    assert "/workspace/model/.modelpush/buildah-1-push-1" in c["args"]
    assert not (d / ".modelpush" / "buildah-1-push-1").exists()  # the run's storage dir is gone


async def test_skopeo_mode(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, tmp_path, real_namespace
) -> None:
    await controllers()
    await real_pvc(real_namespace, "scratch")
    src = f"{gateway_registry.host}/{real_namespace}/src:v1"
    write_model(tmp_path / "m")
    await push_dir(tmp_path / "m", src, gateway_registry.host)
    dst = f"{gateway_registry.host}/{real_namespace}/skopeo:v1"
    params = {"source": f"docker://{src}", "image": dst, "mode": "skopeo"}
    await crs.create(
        "skopeo-1", params, [{"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch"}}]
    )
    run = await crs.wait_done("skopeo-1", limit=180)
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    assert await skopeo_digest(dst) == results(run)["IMAGE_DIGEST"]
    args = (await crs.pods("skopeo-1"))[0]["spec"]["containers"][0]["args"]
    assert args[args.index("--tmpdir") + 1] == "/workspace/scratch/.modelpush/skopeo-1-push-1"


async def test_named_defaults_and_embedded_spec(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_registry, real_namespace
) -> None:
    await install_modelimagepush_crd(real_api)
    await controllers()
    await model_pvc(real_pvc, real_namespace)
    defaults = {
        "apiVersion": "modelpush.dev/v1alpha1",
        "kind": "ModelImagePush",
        "metadata": {"name": "house-defaults"},
        "spec": {
            "params": [
                {"name": "source", "value": "dir:///workspace/model"},
                {"name": "mode", "value": "copy"},
            ]
        },
    }
    await crs.co.create_namespaced_custom_object(
        "modelpush.dev", "v1alpha1", real_namespace, "modelimagepushes", defaults
    )
    ref = {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush", "name": "house-defaults"}
    image = f"{gateway_registry.host}/{real_namespace}/named:v1"
    # the run's own mode overrides the default (copy would be invalid for a dir:// source)
    await crs.create("named-1", {"image": image, "mode": "build"}, WS, customRef=ref)
    run = await crs.wait_done("named-1")
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    # a reference to a missing defaults object fails clearly
    await crs.create("named-2", {"image": image}, WS, customRef={**ref, "name": "missing"})
    c2 = cond(await crs.wait_done("named-2", limit=60))
    assert c2["reason"] == "InvalidParams" and "'missing'" in c2["message"]
    # customSpec (a Pipeline's embedded taskSpec) carries params the same way
    embedded = {
        "apiVersion": "modelpush.dev/v1alpha1",
        "kind": "ModelImagePush",
        "spec": {"params": [{"name": "source", "value": "dir:///workspace/model"}]},
    }
    body = await crs.create("embedded-1", {"image": image}, WS, customSpec=embedded)
    del body  # created without customRef below
    run3 = await crs.wait_done("embedded-1")
    assert cond(run3)["reason"] == "Succeeded", cond(run3)
