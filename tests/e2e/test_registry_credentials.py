"""Registry credentials Tekton's way, through the controller: the ServiceAccount's annotated basic-auth
Secret, a dockercfg registry-secret, and the ServiceAccount token checked by a real TokenReview."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from tests.e2e.conftest import WS, CustomRuns, cond, model_pvc, results, skopeo_digest
from tests.fixtures.registry import TLS_PASSWORD, TLS_USER
from tests.push.tokenserver import TokenServer, token_registry

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_serviceaccount_secrets_and_dockercfg(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_tls_registry, real_namespace
) -> None:
    ctl = await controllers()
    core = client.CoreV1Api(real_api)
    await model_pvc(real_pvc, real_namespace)
    host = gateway_tls_registry.host
    # Tekton's way: a basic-auth Secret naming its registry in a tekton.dev/docker-* annotation, linked to
    # the run's ServiceAccount; a wrong imagePullSecret for the same host comes later in precedence.
    await core.create_namespaced_secret(
        real_namespace,
        {
            "metadata": {"name": "robot", "annotations": {"tekton.dev/docker-0": f"https://{host}"}},
            "type": "kubernetes.io/basic-auth",
            "data": {"username": _b64(TLS_USER), "password": _b64(TLS_PASSWORD)},
        },
    )
    bad = json.dumps({"auths": {host: {"auth": _b64(f"{TLS_USER}:wrongpass")}}})
    await core.create_namespaced_secret(
        real_namespace,
        {
            "metadata": {"name": "pull-bad"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": _b64(bad)},
        },
    )
    await core.create_namespaced_service_account(
        real_namespace,
        {
            "metadata": {"name": "pipeline"},
            "secrets": [{"name": "robot"}],
            "imagePullSecrets": [{"name": "pull-bad"}],
        },
    )
    image = f"{host}/{real_namespace}/sa:v1"
    base = {"source": "dir:///workspace/model", "image": image, "tls-verify": "false"}
    await crs.create("sa-basic", base, WS, serviceAccountName="pipeline")
    done = await crs.wait_done("sa-basic")
    assert (cond(done)["status"], cond(done)["reason"]) == ("True", "Succeeded"), cond(done)
    assert await skopeo_digest(image, f"{TLS_USER}:{TLS_PASSWORD}") == results(done)["IMAGE_DIGEST"]
    pod = (await crs.pods("sa-basic"))[0]
    vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "registry-auth")
    # only what the pod needs: the ServiceAccount's Secret covers the host, the pull secret is not mounted
    assert [s["secret"]["name"] for s in vol["projected"]["sources"]] == ["robot"]
    container = pod["spec"]["containers"][0]
    assert TLS_PASSWORD not in json.dumps(container) and TLS_PASSWORD not in json.dumps(done)
    assert TLS_PASSWORD not in ctl.logs()

    # OpenShift's per-ServiceAccount kind: kubernetes.io/dockercfg (no "auths" wrapper) as registry-secret
    cfg = json.dumps({f"https://{host}": {"auth": _b64(f"{TLS_USER}:{TLS_PASSWORD}")}})
    await core.create_namespaced_secret(
        real_namespace,
        {"metadata": {"name": "cfg"}, "type": "kubernetes.io/dockercfg", "data": {".dockercfg": _b64(cfg)}},
    )
    await crs.create(
        "dockercfg", {**base, "image": f"{host}/{real_namespace}/cfg:v1", "registry-secret": "cfg"}, WS
    )
    cfg_run = await crs.wait_done("dockercfg")
    assert (cond(cfg_run)["status"], cond(cfg_run)["reason"]) == ("True", "Succeeded"), cond(cfg_run)


async def test_serviceaccount_token_with_token_review(
    controllers, crs: CustomRuns, real_api, real_pvc, real_namespace, tmp_path: Path, gateway: str
) -> None:
    await controllers()
    core = client.CoreV1Api(real_api)
    await model_pvc(real_pvc, real_namespace)
    reviewed: list[str] = []

    async def token_review(_user: str, token: str) -> str | None:
        review = await client.AuthenticationV1Api(real_api).create_token_review({"spec": {"token": token}})
        if not review.status.authenticated:
            return None
        reviewed.append(review.status.user.username)
        return review.status.user.username

    await core.create_namespaced_service_account(real_namespace, {"metadata": {"name": "builder"}})
    async with token_registry(
        tmp_path, TokenServer(tmp_path / "auth", {}, check=token_review, listen=gateway)
    ) as reg:
        base = {
            "source": "dir:///workspace/model",
            "image": f"{reg.host}/{real_namespace}/model:v1",
            "insecure-registries": reg.host,
            "registry-auth": "serviceaccount",
        }
        await crs.create("sa-token", base, WS, serviceAccountName="builder")
        ok = await crs.wait_done("sa-token")
        assert (cond(ok)["status"], cond(ok)["reason"]) == ("True", "Succeeded"), cond(ok)
        assert f"system:serviceaccount:{real_namespace}:builder" in reviewed
        pod = (await crs.pods("sa-token"))[0]
        assert pod["spec"]["automountServiceAccountToken"] is False
        vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "registry-auth")
        assert vol["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600

        # no token (Secrets only, and there are none): the registry refuses -> AuthenticationFailed
        await crs.create("no-token", {**base, "registry-auth": "secret"}, WS, serviceAccountName="builder")
        refused = await crs.wait_done("no-token")
        assert (cond(refused)["status"], cond(refused)["reason"]) == ("False", "AuthenticationFailed"), cond(
            refused
        )
