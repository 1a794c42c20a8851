"""The README's InferenceService (config/samples/kserve/) is accepted by a real apiserver with KServe's own
InferenceService CRD, taken from the github.com/kserve/kserve module, installed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from hack.kserve import KSERVE_VERSION, crd_file
from hack.tekton.apply import apply_manifest, wait_crds_established

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "samples" / "kserve" / "inferenceservice.yaml"


@pytest.fixture(scope="module")
async def kserve_crd(real_api: client.ApiClient) -> AsyncIterator[str]:
    """KServe's CRD on the shared real-node cluster; removed after when this module brought it."""
    crd = yaml.safe_load(crd_file().read_text())
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == "serving.kserve.io"
    name = crd["metadata"]["name"]
    ext = client.ApiextensionsV1Api(real_api)
    try:
        await ext.read_custom_resource_definition(name)
        ours = False
    except client.ApiException as e:
        if e.status != 404:
            raise
        ours = True
    await apply_manifest(real_api, crd)  # server-side apply: the 1 MB CRD is too big for client-side apply
    await wait_crds_established(real_api, [name])
    yield name
    if ours:
        await ext.delete_custom_resource_definition(name)


async def test_inferenceservice_sample_is_accepted(
    kserve_crd: str, real_api: client.ApiClient, real_namespace: str
) -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    api = client.CustomObjectsApi(real_api)
    group, version = doc["apiVersion"].split("/")
    created = await api.create_namespaced_custom_object(
        group, version, real_namespace, "inferenceservices", doc
    )
    # Stored as written (the CRD's schema pruned nothing): the oci:// storageUri reaches KServe.
    model = created["spec"]["predictor"]["model"]
    assert model["storageUri"] == doc["spec"]["predictor"]["model"]["storageUri"]
    assert model["storageUri"].startswith("oci://")
    assert model["modelFormat"] == {"name": "huggingface"}
    assert KSERVE_VERSION  # the CRD's version is pinned in hack/kserve.py


async def test_storage_uri_must_be_a_string(
    kserve_crd: str, real_api: client.ApiClient, real_namespace: str
) -> None:
    """The CRD is KServe's real schema, not a permissive stand-in: a wrong type is refused."""
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["metadata"]["name"] = "bad-type"
    doc["spec"]["predictor"]["model"]["storageUri"] = {"oci": "x"}
    api = client.CustomObjectsApi(real_api)
    with pytest.raises(client.ApiException) as err:
        await api.create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", real_namespace, "inferenceservices", doc
        )
    assert err.value.status == 422
    assert "storageUri" in (err.value.body or "")
