"""A PipelineRun pushes with `sign: true`; the real cosign verifies signature and provenance from outside.

The key Secret is made the way Tekton Chains users make it, by `cosign generate-key-pair k8s://NS/NAME`,
in a namespace of its own (standing in for the controller's), so the per-run copy really crosses
namespaces. Run under `flock /tmp/modelpush-tekton.lock` like every Tekton test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from hack.registry import LocalRegistry
from hack.tekton.pipelines import params, pipeline_run, push_task
from tests.fixtures.cosign import statement, verify, verify_attestation
from tests.tekton.test_pipelineruns import SOURCE, WS, model_pvc
from tests.tekton.tkn import Tekton, condition, poll, result

pytestmark = [pytest.mark.cluster, pytest.mark.registry]
PASSWORD = "tekton signing password"


@pytest.fixture
async def key_namespace(kube_api: client.ApiClient, namespace: str) -> AsyncIterator[str]:
    core = client.CoreV1Api(kube_api)
    name = f"{namespace}-keys"
    await core.create_namespace({"metadata": {"name": name, "labels": {"modelpush.dev/test": "true"}}})
    try:
        yield name
    finally:
        await core.delete_namespace(name)


@pytest.fixture
async def cosign_pub(cosign: str, cluster, key_namespace: str, tmp_path: Path) -> Path:
    """`cosign generate-key-pair k8s://<ns>/signing-secrets`: the Secret Chains reads, made by cosign."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COSIGN_PASSWORD": PASSWORD}
    await asyncio.to_thread(
        subprocess.run,
        [cosign, "generate-key-pair", f"k8s://{key_namespace}/signing-secrets"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tmp_path / "cosign.pub"


@pytest.fixture
def modelpush_env(key_namespace: str, cosign_pub: Path) -> dict[str, str]:
    """The controller reads the key Secret from `key_namespace` (made before the controller starts)."""
    return {"MODELPUSH_SIGNING_SECRET_NAMESPACE": key_namespace}


def signed_push(registry: str, image: str) -> dict:
    return push_task(
        "push",
        params=params(source=SOURCE, image=f"{registry}/{image}", insecure_registries=registry, sign="true"),
        workspaces=WS,
    )


async def _secret_gone(kube_api: client.ApiClient, namespace: str, name: str) -> None:
    core = client.CoreV1Api(kube_api)

    async def gone() -> bool:
        try:
            await core.read_namespaced_secret(name, namespace)
        except client.ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    await poll(gone, 60, f"per-run Secret {namespace}/{name} deleted")


async def test_pipelinerun_signs_and_cosign_verifies_from_outside(
    tk: Tekton,
    kube_api: client.ApiClient,
    namespace: str,
    key_namespace: str,
    make_pvc,
    registry: LocalRegistry,
    cosign: str,
    cosign_pub: Path,
) -> None:
    await model_pvc(make_pvc, namespace)
    reg = registry.host
    await tk.create(
        pipeline_run("signed", [signed_push(reg, f"{namespace}/mistral:signed")], workspace_claim="models")
    )
    pr = await tk.wait_pr_done("signed", within=300)
    assert condition(pr)["status"] == "True", await tk.describe("signed")
    run = (await tk.custom_runs_of("signed"))["push"]
    digest, url = result(run, "IMAGE_DIGEST"), result(run, "IMAGE_URL")
    assert digest and url and result(run, "SIGNATURE_REF") and result(run, "ATTESTATION_REF")

    out = await asyncio.to_thread(verify, cosign, cosign_pub, url)
    assert out.returncode == 0, out.stderr
    att = await asyncio.to_thread(verify_attestation, cosign, cosign_pub, url)
    assert att.returncode == 0, att.stderr
    st = statement(att.stdout)
    assert [s["digest"]["sha256"] for s in st["subject"]] == [digest.split(":")[1]]
    inv = st["predicate"]["buildDefinition"]["internalParameters"]["invocation"]
    assert inv["namespace"] == namespace and inv["name"] == run["metadata"]["name"]
    assert inv["uid"] == run["metadata"]["uid"] and inv["pipelineRun"] == "signed"
    assert inv["pipelineTask"] == "push"
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {d["name"] for d in deps} == {
        "models/config.json",
        "models/tokenizer.json",
        "models/weights/model-00001.safetensors",
    }

    # The key's copy is gone with the run, and no key material is anywhere in the run's objects.
    await _secret_gone(kube_api, namespace, f"{run['metadata']['name']}-signing")
    secret = await client.CoreV1Api(kube_api).read_namespaced_secret("signing-secrets", key_namespace)
    key_body = secret.data["cosign.key"]
    events = await client.CoreV1Api(kube_api).list_namespaced_event(namespace)
    pods = await tk.pods_of(run["metadata"]["name"])
    seen = json.dumps([run, [e.message for e in events.items], pods])
    for needle in (key_body[40:80], PASSWORD, "SIGSTORE PRIVATE KEY"):
        assert needle not in seen


@pytest.fixture
def missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPUSH_SIGNING_SECRET_NAME", "no-such-secret")


async def test_missing_key_fails_signing_but_keeps_the_push(
    missing_key: None, tk: Tekton, namespace: str, key_namespace: str, make_pvc, registry: LocalRegistry
) -> None:
    await model_pvc(make_pvc, namespace)
    reg = registry.host
    await tk.create(
        pipeline_run("nokey", [signed_push(reg, f"{namespace}/mistral:nokey")], workspace_claim="models")
    )
    await tk.wait_pr_done("nokey", within=300)
    run = (await tk.custom_runs_of("nokey"))["push"]
    c = condition(run)
    assert (c["status"], c["reason"]) == ("False", "SigningFailed"), c
    assert f"Secret {key_namespace}/no-such-secret" in c["message"] and "cosign.key" in c["message"]
    assert (result(run, "IMAGE_DIGEST") or "").startswith("sha256:")
    assert result(run, "SIGNATURE_REF") is None
