"""Registry credentials from a dockerconfigjson Secret, against the TLS + htpasswd registry."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes_asyncio import client

from tests.e2e.conftest import WS, CustomRuns, cond, model_pvc, results, skopeo_digest
from tests.fixtures.registry import TLS_PASSWORD, TLS_USER

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


async def _secret(core: client.CoreV1Api, ns: str, name: str, host: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = json.dumps({"auths": {host: {"auth": auth}}})
    await core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
        },
    )


async def test_registry_secret_auth(
    controllers, crs: CustomRuns, kube_api, make_pvc, tls_registry, namespace
) -> None:
    ctl = await controllers()
    core = client.CoreV1Api(kube_api)
    await model_pvc(make_pvc, namespace)
    host = tls_registry.host
    await _secret(core, namespace, "good", host, TLS_USER, TLS_PASSWORD)
    await _secret(core, namespace, "bad", host, TLS_USER, "wrongpass")
    image = f"{host}/{namespace}/private:v1"
    base = {"source": "dir:///workspace/model", "image": image, "tls-verify": "false"}

    await crs.create("auth-bad", {**base, "registry-secret": "bad"}, WS)
    bad = await crs.wait_done("auth-bad")
    assert (cond(bad)["status"], cond(bad)["reason"]) == ("False", "AuthenticationFailed"), cond(bad)
    assert "wrongpass" not in json.dumps(bad) and "wrongpass" not in ctl.logs()

    await crs.create("auth-good", {**base, "registry-secret": "good"}, WS)
    good = await crs.wait_done("auth-good")
    assert (cond(good)["status"], cond(good)["reason"]) == ("True", "Succeeded"), cond(good)
    assert await skopeo_digest(image, f"{TLS_USER}:{TLS_PASSWORD}") == results(good)["IMAGE_DIGEST"]
    pod = (await crs.pods("auth-good"))[0]
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "registry-auth")
    assert mount["readOnly"] is True
