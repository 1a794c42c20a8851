"""Tekton's release CRDs as every local control plane serves them before Tekton's webhook exists (read from
the Go module cache)."""

from __future__ import annotations

import pytest

from hack.tekton import manifests


@pytest.fixture(scope="module")
def moddir():
    return manifests.module_dir()


def test_crds_come_from_the_release_without_conversion_webhook(moddir) -> None:
    crds = {c["metadata"]["name"]: c for c in manifests.crds(moddir)}
    assert {"pipelines.tekton.dev", "pipelineruns.tekton.dev", "customruns.tekton.dev"} <= set(crds)
    for crd in crds.values():
        assert crd["spec"]["conversion"] == {"strategy": "None"}
    versions = {v["name"]: v for v in crds["customruns.tekton.dev"]["spec"]["versions"]}
    assert versions["v1beta1"]["storage"] is True
    assert "status" in versions["v1beta1"]["subresources"]
    storage = [v["name"] for v in crds["pipelineruns.tekton.dev"]["spec"]["versions"] if v["storage"]]
    assert storage == ["v1"]


def test_patch_does_not_mutate_its_input() -> None:
    crd = {"spec": {"conversion": {"strategy": "Webhook"}}}
    assert manifests.patch_crd(crd)["spec"]["conversion"] == {"strategy": "None"}
    assert crd["spec"]["conversion"]["strategy"] == "Webhook"
