"""Issue 10 end to end on the local cluster: params from one place, the params snapshot, objects created with
the run, the error kind across the pod boundary, RBAC 403 vs admission, PodSecurity `restricted`, and old
attempts' pods. Each test fails against the controller before issue 10."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from hack.ports import free_port
from hack.registry import LocalRegistry
from tests.e2e.conftest import (
    REPO,
    WS,
    CustomRuns,
    cond,
    install_modelimagepush_crd,
    model_pvc,
    results,
    skopeo_digest,
    stuck_copy,
    wait_pod_phase,
)
from tests.e2e.test_auth import _secret
from tests.e2e.test_rbac import _kubeconfig
from tests.fixtures.cluster import wait_for
from tests.fixtures.registry import TLS_PASSWORD, TLS_USER

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
MIP = {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"}


def embedded(**params: str) -> dict[str, Any]:
    return {**MIP, "spec": {"params": [{"name": k, "value": v} for k, v in params.items()]}}


# --- 1. params come from one place ----------------------------------------------------------------------


async def test_embedded_spec_secret_and_ca_are_looked_up(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_tls_registry, real_namespace
) -> None:
    """The Secret and CA ConfigMap named only in customSpec.spec.params are checked and used like others."""
    image = f"{gateway_tls_registry.host}/{real_namespace}/embedded-ca:v1"
    await model_pvc(real_pvc, real_namespace)
    await controllers()
    # a missing Secret named in the embedded spec: MissingSecret at once, no pod stuck in ContainerCreating
    spec = embedded(source="dir:///workspace/model", **{"registry-secret": "absent"})
    await crs.create("emb-missing", {"image": image}, WS, customSpec=spec)
    c = cond(await crs.wait_done("emb-missing", limit=60))
    assert (c["status"], c["reason"]) == ("False", "MissingSecret") and "'absent'" in c["message"], c
    assert await crs.pods("emb-missing") == []
    # a CA ConfigMap with only ca.crt: the pod trusts it through that key and the push succeeds
    core = client.CoreV1Api(real_api)
    await _secret(core, real_namespace, "good", gateway_tls_registry.host, TLS_USER, TLS_PASSWORD)
    ca_only = {"metadata": {"name": "ca-only"}, "data": {"ca.crt": gateway_tls_registry.ca_file.read_text()}}
    await core.create_namespaced_config_map(real_namespace, ca_only)
    spec = embedded(source="dir:///workspace/model", **{"registry-secret": "good", "ca-bundle": "ca-only"})
    await crs.create("emb-ca", {"image": image}, WS, customSpec=spec)
    run = await crs.wait_done("emb-ca")
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    args = (await crs.pods("emb-ca"))[0]["spec"]["containers"][0]["args"]
    assert args[args.index("--ca-file") + 1] == "/etc/modelpush/ca/ca.crt"
    assert await skopeo_digest(image, f"{TLS_USER}:{TLS_PASSWORD}") == results(run)["IMAGE_DIGEST"]


# --- 2. the params snapshot; no pod outlives its run ----------------------------------------------------


async def test_defaults_deleted_mid_run_keep_the_run_then_cancel_deletes_the_pod(
    controllers,
    crs: CustomRuns,
    real_api,
    gateway_registry,
    blackhole: str,
    real_namespace,
) -> None:
    await install_modelimagepush_crd(real_api)
    await controllers()
    body = {
        **MIP,
        "metadata": {"name": "stuck-defaults"},
        "spec": {
            "params": [
                {"name": k, "value": v}
                for k, v in stuck_copy(blackhole, gateway_registry).items()
                if k != "image"
            ]
        },
    }
    await crs.co.create_namespaced_custom_object(
        "modelpush.dev", "v1alpha1", real_namespace, "modelimagepushes", body
    )
    ref = {**MIP, "name": "stuck-defaults"}
    await crs.create("snap-1", {"image": f"{gateway_registry.host}/{real_namespace}/snap:v1"}, customRef=ref)
    await wait_pod_phase(crs, "snap-1", "Running")
    run = await crs.get("snap-1")
    assert run["status"]["extraFields"]["params"]["source"].startswith("docker://")
    await crs.co.delete_namespaced_custom_object(
        "modelpush.dev", "v1alpha1", real_namespace, "modelimagepushes", "stuck-defaults"
    )
    # make the controller look again (any change of the run is an event)
    await crs.co.patch_namespaced_custom_object(
        "tekton.dev",
        "v1beta1",
        real_namespace,
        "customruns",
        "snap-1",
        {"metadata": {"labels": {"poke": "1"}}},
        _content_type="application/merge-patch+json",
    )
    await asyncio.sleep(3)
    run = await crs.get("snap-1")
    assert cond(run)["status"] == "Unknown", cond(run)  # the deleted defaults did not fail the run
    assert [p["status"]["phase"] for p in await crs.pods("snap-1")] == ["Running"]
    await crs.patch_spec("snap-1", {"status": "RunCancelled"})
    assert cond(await crs.wait_done("snap-1", limit=60))["reason"] == "CustomRunCancelled"

    async def pod_gone() -> bool:
        return all(p["metadata"].get("deletionTimestamp") for p in await crs.pods("snap-1"))

    await wait_for(pod_gone, 60, "pod deleted")


# --- 6. objects created together with the run -----------------------------------------------------------


async def test_secret_created_after_the_run_is_waited_for(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_registry, real_namespace
) -> None:
    await controllers(MODELPUSH_MISSING_OBJECT_GRACE_SECONDS="60")
    core = client.CoreV1Api(real_api)
    await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/late-secret:v1"
    await crs.create(
        "late-1", {"source": "dir:///workspace/model", "image": image, "registry-secret": "late"}, WS
    )
    waiting = await crs.wait_status(
        "late-1", lambda st: (st.get("conditions") or [{}])[0].get("reason") == "WaitingForSecret", limit=30
    )
    assert cond(waiting)["status"] == "Unknown" and "'late'" in cond(waiting)["message"]
    await _secret(
        core, real_namespace, "late", gateway_registry.host, "any", "thing"
    )  # the registry has no auth
    run = await crs.wait_done("late-1", limit=120)
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    assert await skopeo_digest(image) == results(run)["IMAGE_DIGEST"]


# --- 3. the error kind crosses the pod boundary ---------------------------------------------------------


@pytest.fixture
async def broken_registry(tmp_path: Path, gateway: str) -> AsyncIterator[LocalRegistry]:
    """A real docker-registry (on the gateway) whose storage root is a file: /v2/ answers 200, every blob
    call 500."""
    reg = LocalRegistry(tmp_path / "broken-registry", listen=gateway)
    await reg.start()
    try:
        shutil.rmtree(reg.root / "data", ignore_errors=True)
        (reg.root / "data").write_text("not a directory")
        yield reg
    finally:
        await reg.stop()


async def test_registry_5xx_after_retries_is_registry_unreachable(
    controllers, crs: CustomRuns, real_pvc, broken_registry: LocalRegistry, real_namespace
) -> None:
    await controllers(MODELPUSH_INSECURE_REGISTRIES=broken_registry.host)
    await model_pvc(real_pvc, real_namespace)
    await crs.create(
        "five-1", {"source": "dir:///workspace/model", "image": f"{broken_registry.host}/a/b:v1"}, WS
    )
    c = cond(await crs.wait_done("five-1", limit=180))
    assert (c["status"], c["reason"]) == ("False", "RegistryUnreachable"), c
    assert "answered 500" in c["message"], c


async def test_digest_pinned_build_is_invalid_params_without_a_pod(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace
) -> None:
    await controllers()
    await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/pinned@sha256:{'a' * 64}"
    await crs.create("pin-1", {"source": "dir:///workspace/model", "image": image}, WS)
    c = cond(await crs.wait_done("pin-1", limit=60))
    assert (c["status"], c["reason"]) == ("False", "InvalidParams") and "param 'image'" in c["message"], c
    assert await crs.pods("pin-1") == []


# --- 4. a 403 from RBAC is not PodRejected ---------------------------------------------------------------


async def test_rbac_403_on_pod_create_is_retried_not_final(
    real_cluster, real_api, controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace, tmp_path
) -> None:
    core = client.CoreV1Api(real_api)
    rbac = client.RbacAuthorizationV1Api(real_api)
    role = yaml.safe_load((REPO / "config" / "rbac" / "role.yaml").read_text())
    name = f"mip-no-create-{real_namespace}"
    full_rules = role["rules"]
    without_create = [
        {**r, "verbs": [v for v in r["verbs"] if v != "create"]} if r["resources"] == ["pods"] else r
        for r in full_rules
    ]
    await rbac.create_cluster_role({"metadata": {"name": name}, "rules": without_create})
    await core.create_namespaced_service_account(real_namespace, {"metadata": {"name": "ctl"}})
    await rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": real_namespace}],
        }
    )
    try:
        tr = await core.create_namespaced_service_account_token(
            "ctl", real_namespace, {"spec": {"expirationSeconds": 3600}}
        )
        kubeconfig = _kubeconfig(
            tmp_path / "ctl.kubeconfig",
            real_cluster.local.server,
            real_cluster.local.ca_file,
            tr.status.token,
        )
        ctl = await controllers(KUBECONFIG=str(kubeconfig))
        await model_pvc(real_pvc, real_namespace)
        image = f"{gateway_registry.host}/{real_namespace}/rbac-retry:v1"
        await crs.create("forbid-1", {"source": "dir:///workspace/model", "image": image}, WS)

        async def forbidden_event() -> bool:
            return any(e["reason"] == "PodCreateForbidden" for e in await crs.events("forbid-1"))

        await wait_for(forbidden_event, 60, "PodCreateForbidden event")
        run = await crs.get("forbid-1")
        assert cond(run)["status"] == "Unknown", cond(run)  # not a final PodRejected
        assert "may not create pods" in ctl.logs()
        # the admin fixes the Role: the retry (with backoff) goes through without a new run
        await rbac.replace_cluster_role(name, {"metadata": {"name": name}, "rules": full_rules})
        run = await crs.wait_done("forbid-1", limit=120)
        assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    finally:
        await rbac.delete_cluster_role_binding(name)
        await rbac.delete_cluster_role(name)


# --- 7. PodSecurity `restricted` ------------------------------------------------------------------------


async def _restrict(core: client.CoreV1Api, real_namespace: str) -> None:
    await core.patch_namespace(
        real_namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )


async def test_restricted_namespace_runs_native_pushes(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_registry, real_namespace
) -> None:
    """No runAsUser by default (OpenShift assigns one); the pod still meets `restricted`. The model files
    belong to another UID with mode 0644, as a download step running under a different UID leaves them."""
    core = client.CoreV1Api(real_api)
    await _restrict(core, real_namespace)
    await controllers()
    d = await model_pvc(real_pvc, real_namespace)
    for f in d.iterdir():
        os.chown(f, 1234, 1234)
        f.chmod(0o644)
    image = f"{gateway_registry.host}/{real_namespace}/restricted:v1"
    await crs.create("psa-build", {"source": "dir:///workspace/model", "image": image}, WS)
    run = await crs.wait_done("psa-build")
    assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
    pod = (await crs.pods("psa-build"))[0]
    assert "runAsUser" not in pod["spec"]["securityContext"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert await skopeo_digest(image) == results(run)["IMAGE_DIGEST"]


async def test_restricted_namespace_refuses_privileged_buildah(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_registry, real_namespace
) -> None:
    core = client.CoreV1Api(real_api)
    # what refuses a privileged pod first: the apiserver itself when it runs without --allow-privileged
    # (today's control plane), else PodSecurity (real nodes set --allow-privileged=true)
    probe = {
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
    }
    try:
        await core.create_namespaced_pod(real_namespace, probe, dry_run="All")
        expected = 'violates PodSecurity "restricted:latest"'
    except client.ApiException as e:
        assert e.status == 422 and "disallowed by cluster policy" in e.body, e.body
        expected = "disallowed by cluster policy"
    await _restrict(core, real_namespace)
    await controllers(MODELPUSH_ALLOW_PRIVILEGED_BUILDAH="true")
    await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/psa-buildah:v1"
    await crs.create(
        "psa-buildah", {"source": "dir:///workspace/model", "image": image, "mode": "buildah"}, WS
    )
    c = cond(await crs.wait_done("psa-buildah", limit=60))
    assert (c["status"], c["reason"]) == ("False", "PodRejected") and expected in c["message"], c
    assert await crs.pods("psa-buildah") == []


# --- 10. old attempts' pods -----------------------------------------------------------------------------


async def test_keep_finished_pods_deletes_older_attempts(
    controllers, crs: CustomRuns, real_pvc, real_namespace, gateway: str
) -> None:
    await controllers(MODELPUSH_KEEP_FINISHED_PODS="1")
    await model_pvc(real_pvc, real_namespace)
    closed = f"{gateway}:{free_port()}"  # nothing listens: every attempt fails fast
    params = {"source": "dir:///workspace/model", "image": f"{closed}/a/b:v1", "insecure-registries": closed}
    await crs.create("keep-1", params, WS, retries=2)
    run = await crs.wait_done("keep-1", limit=180)
    assert (cond(run)["status"], cond(run)["reason"]) == ("False", "RegistryUnreachable"), cond(run)
    assert len(run["status"]["retriesStatus"]) == 2

    async def only_last() -> list[str] | None:
        names = sorted(
            p["metadata"]["name"]
            for p in await crs.pods("keep-1")
            if not p["metadata"].get("deletionTimestamp")
        )
        return names if names == ["keep-1-push-3"] else None

    await wait_for(only_last, 60, "only the last attempt's pod left")
