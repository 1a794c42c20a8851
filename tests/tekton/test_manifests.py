"""The Tekton release manifests as the launcher applies them (read from the Go module cache)."""

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


def test_config_maps_target_the_system_namespace_and_disable_coschedule(moddir) -> None:
    cms = {c["metadata"]["name"]: c for c in manifests.config_maps(moddir)}
    assert {"feature-flags", "config-defaults", "config-logging", "config-observability"} <= set(cms)
    assert {c["metadata"]["namespace"] for c in cms.values()} == {manifests.SYSTEM_NAMESPACE}
    assert cms["feature-flags"]["data"]["coschedule"] == "disabled"
    # Everything else keeps the release's defaults.
    assert cms["feature-flags"]["data"]["enable-api-fields"] == "beta"


def test_patches_do_not_mutate_their_input() -> None:
    crd = {"spec": {"conversion": {"strategy": "Webhook"}}}
    cm = {"metadata": {"name": "feature-flags"}, "data": {"coschedule": "workspaces"}}
    assert manifests.patch_crd(crd)["spec"]["conversion"] == {"strategy": "None"}
    assert manifests.patch_feature_flags(cm)["data"]["coschedule"] == "disabled"
    assert crd["spec"]["conversion"]["strategy"] == "Webhook"
    assert cm["data"]["coschedule"] == "workspaces"
