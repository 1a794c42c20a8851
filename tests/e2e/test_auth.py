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
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_tls_registry, real_namespace
) -> None:
    ctl = await controllers()
    core = client.CoreV1Api(real_api)
    await model_pvc(real_pvc, real_namespace)
    host = gateway_tls_registry.host
    await _secret(core, real_namespace, "good", host, TLS_USER, TLS_PASSWORD)
    await _secret(core, real_namespace, "bad", host, TLS_USER, "wrongpass")
    image = f"{host}/{real_namespace}/private:v1"
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


async def test_ca_bundle_configmap_trusts_private_ca(
    controllers, crs: CustomRuns, real_api, real_pvc, gateway_tls_registry, real_namespace
) -> None:
    """A registry behind a private CA: trusted through a ConfigMap, with TLS verification left on."""
    await controllers()
    core = client.CoreV1Api(real_api)
    await model_pvc(real_pvc, real_namespace)
    host = gateway_tls_registry.host
    await _secret(core, real_namespace, "good", host, TLS_USER, TLS_PASSWORD)
    pem = gateway_tls_registry.ca_file.read_text()
    await core.create_namespaced_config_map(
        real_namespace, {"metadata": {"name": "registry-ca"}, "data": {"ca-bundle.crt": pem}}
    )
    image = f"{host}/{real_namespace}/private-ca:v1"
    base = {"source": "dir:///workspace/model", "image": image, "registry-secret": "good"}

    await crs.create("ca-ok", {**base, "ca-bundle": "registry-ca"}, WS)
    ok = await crs.wait_done("ca-ok")
    assert (cond(ok)["status"], cond(ok)["reason"]) == ("True", "Succeeded"), cond(ok)
    assert await skopeo_digest(image, f"{TLS_USER}:{TLS_PASSWORD}") == results(ok)["IMAGE_DIGEST"]
    pod = (await crs.pods("ca-ok"))[0]
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--ca-file") + 1] == "/etc/modelpush/ca/ca-bundle.crt"
    insecure = [args[i + 1] for i, a in enumerate(args) if a == "--insecure-registry"]
    assert host not in insecure  # TLS verified against the bundle, not skipped

    # a compatibility mode gets the bundle as skopeo's --cert-dir
    copied = f"{host}/{real_namespace}/private-ca-skopeo:v1"
    skopeo = {"source": f"docker://{image}", "image": copied, "mode": "skopeo"}
    await crs.create("ca-skopeo", {**skopeo, "registry-secret": "good", "ca-bundle": "registry-ca"})
    sk = await crs.wait_done("ca-skopeo")
    assert (cond(sk)["status"], cond(sk)["reason"]) == ("True", "Succeeded"), cond(sk)
    assert results(sk)["IMAGE_DIGEST"] == results(ok)["IMAGE_DIGEST"]

    # the same run without the bundle: the private CA is not trusted (proves the bundle did the work)
    await crs.create("ca-none", base, WS)
    none = await crs.wait_done("ca-none")
    assert (cond(none)["status"], cond(none)["reason"]) == ("False", "RegistryUnreachable"), cond(none)
    assert "not trusted" in cond(none)["message"], cond(none)

    await crs.create("ca-missing", {**base, "ca-bundle": "no-such-ca"}, WS, retries=2)
    missing = await crs.wait_done("ca-missing", limit=60)
    c = cond(missing)
    assert (c["status"], c["reason"]) == ("False", "MissingCABundle"), c
    assert "'no-such-ca'" in c["message"] and "kubectl create configmap" in c["message"]
    assert await crs.pods("ca-missing") == []
    assert not missing["status"].get("retriesStatus")
