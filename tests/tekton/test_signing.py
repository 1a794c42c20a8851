"""A PipelineRun (a TaskRun writes the model, our task pushes it with `sign: true`) on the in-cluster Tekton;
the real cosign verifies signature and provenance from outside.

The key Secret is made the way Tekton Chains users make it, by `cosign generate-key-pair k8s://NS/NAME`,
in a namespace of its own (standing in for the controller's), so the per-run copy really crosses
namespaces.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from hack.localcluster.realcluster import RealCluster
from hack.tekton.pipelines import params, push_task
from tests.fixtures.cosign import statement, verify, verify_attestation
from tests.tekton.model import SOURCE, WS, model_pipeline
from tests.tekton.tkn import Tekton, condition, poll, result

pytestmark = [pytest.mark.cluster]
PASSWORD = "tekton signing password"


@pytest.fixture
async def key_namespace(real_api: client.ApiClient, real_namespace: str) -> AsyncIterator[str]:
    core = client.CoreV1Api(real_api)
    name = f"{real_namespace}-keys"
    await core.create_namespace({"metadata": {"name": name, "labels": {"modelpush.dev/test": "true"}}})
    try:
        yield name
    finally:
        await core.delete_namespace(name)


@pytest.fixture
async def cosign_pub(cosign: str, real_cluster: RealCluster, key_namespace: str, tmp_path: Path) -> Path:
    """`cosign generate-key-pair k8s://<ns>/signing-secrets`: the Secret Chains reads, made by cosign."""
    env = {**os.environ, "KUBECONFIG": str(real_cluster.kubeconfig), "COSIGN_PASSWORD": PASSWORD}
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
    """The controller reads the key Secret from `key_namespace` (made before the controller starts). No
    RUN_AS_USER, as by default: the pod has no fsGroup, and the image's user still reads the key files
    (mounted 0444; with 0440 they were root's alone and signing failed with Permission denied)."""
    return {"MODELPUSH_SIGNING_SECRET_NAMESPACE": key_namespace}


def signed_push(registry: str, image: str) -> dict:
    return push_task(
        "push",
        params=params(source=SOURCE, image=f"{registry}/{image}", insecure_registries=registry, sign="true"),
        workspaces=WS,
        runAfter=["write-model"],
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
    real_api: client.ApiClient,
    key_namespace: str,
    tekton: RealCluster,
    images: dict[str, Any],
    cosign: str,
    cosign_pub: Path,
) -> None:
    reg, namespace = tekton.registry, tk.ns
    push = signed_push(reg, f"{namespace}/mistral:signed")
    await tk.create(model_pipeline("signed", images["step"].ref, push))
    pr = await tk.wait_pr_done("signed", within=420)
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
    await _secret_gone(real_api, namespace, f"{run['metadata']['name']}-signing")
    secret = await client.CoreV1Api(real_api).read_namespaced_secret("signing-secrets", key_namespace)
    key_body = secret.data["cosign.key"]
    events = await client.CoreV1Api(real_api).list_namespaced_event(namespace)
    pods = await tk.pods_of(run["metadata"]["name"])
    seen = json.dumps([run, [e.message for e in events.items], pods])
    for needle in (key_body[40:80], PASSWORD, "SIGSTORE PRIVATE KEY"):
        assert needle not in seen


@pytest.fixture
def missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPUSH_SIGNING_SECRET_NAME", "no-such-secret")


async def test_missing_key_fails_signing_but_keeps_the_push(
    missing_key: None, tk: Tekton, key_namespace: str, tekton: RealCluster, images: dict[str, Any]
) -> None:
    push = signed_push(tekton.registry, f"{tk.ns}/mistral:nokey")
    await tk.create(model_pipeline("nokey", images["step"].ref, push))
    await tk.wait_pr_done("nokey", within=420)
    run = (await tk.custom_runs_of("nokey"))["push"]
    c = condition(run)
    assert (c["status"], c["reason"]) == ("False", "SigningFailed"), c
    assert f"Secret {key_namespace}/no-such-secret" in c["message"] and "cosign.key" in c["message"]
    assert (result(run, "IMAGE_DIGEST") or "").startswith("sha256:")
    assert result(run, "SIGNATURE_REF") is None
