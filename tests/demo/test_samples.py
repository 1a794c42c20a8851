"""Every object under config/samples/ is accepted by the real-node cluster's apiserver with the in-cluster
Tekton (its release CRDs, and its webhook, which defaults, validates and converts Tekton objects at
admission) and the project's CRDs, and every Kubernetes YAML block in the README is one of the files under
config/, so the docs cannot drift from what is tested.

Samples are created with `dryRun=All`: admission (webhooks included), validation and pruning all run, and
nothing is stored, so a sample PipelineRun is not started and the shared cluster keeps no sample object."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from hack.localcluster.realcluster import RealCluster
from hack.localcluster.rest import Rest
from hack.tekton.apply import apply_manifest, wait_crds_established

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "config" / "samples"
PROJECT_CRDS = REPO / "config" / "crd"
_YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def sample_docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(f"{path.name}#{i}", d) for i, d in enumerate(_docs(path))]
    return out


@pytest.fixture(scope="module")
def policy_crd() -> Path:
    """sigstore policy-controller's ClusterImagePolicy CRD (hack/policy-crd.sh, from its Go module)."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "policy-crd.sh")], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
async def crds(
    real_cluster: RealCluster, real_api: client.ApiClient, policy_crd: Path
) -> AsyncIterator[None]:
    """The in-cluster Tekton plus the project's CRDs and sigstore policy-controller's ClusterImagePolicy CRD.
    A CRD the cluster lacks is created and removed again afterwards; one it has (config/default installs
    the project's) is used as it is, since the cluster is shared."""
    real_cluster.install_tekton()
    ext = client.ApiextensionsV1Api(real_api)
    have = {c.metadata.name for c in (await ext.list_custom_resource_definition()).items}
    wanted = [
        d
        for p in sorted(PROJECT_CRDS.glob("*.yaml"))
        for d in _docs(p)
        if d.get("kind") == "CustomResourceDefinition"
    ]
    # signing (issue 13): the ClusterImagePolicy sample is checked against sigstore policy-controller's
    # own CRD (from its Go module). Its conversion webhook is not running here; the versions share one
    # schema shape, so conversion None is enough to validate the sample.
    for doc in _docs(policy_crd):
        doc["spec"]["conversion"] = {"strategy": "None"}
        wanted.append(doc)
    created = []
    try:
        for doc in wanted:
            name = doc["metadata"]["name"]
            if name not in have:
                created.append(name)
                await apply_manifest(real_api, doc)
        await wait_crds_established(real_api, [d["metadata"]["name"] for d in wanted])
        yield
    finally:
        for name in created:
            await ext.delete_custom_resource_definition(name)


def _resource_path(rest: Rest, api_version: str, kind: str, ns: str) -> str:
    """The collection URL for `kind`, found by discovery (plurals are not always kind + s)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    code, found = rest.request("GET", base)
    assert code == 200, f"{api_version} is not served by the apiserver: {found}"
    assert isinstance(found, dict)
    res = next(r for r in found["resources"] if r["kind"] == kind and "/" not in r["name"])
    return f"{base}/namespaces/{ns}/{res['name']}" if res["namespaced"] else f"{base}/{res['name']}"


@pytest.mark.cluster
@pytest.mark.parametrize("label,doc", sample_docs(), ids=[label for label, _ in sample_docs()])
async def test_sample_is_accepted(
    label: str, doc: dict[str, Any], crds: None, real_cluster: RealCluster, real_namespace: str
) -> None:
    rest = real_cluster.local.rest()
    path = _resource_path(rest, doc["apiVersion"], doc["kind"], real_namespace)
    # Samples use generateName (so they can be created repeatedly), which server-side apply cannot do:
    # POST them as they are, the way `kubectl create -f --dry-run=server` does.
    code, obj = rest.request("POST", f"{path}?dryRun=All", doc)
    assert code == 201, f"{label} ({doc['kind']}) rejected: HTTP {code}: {obj}"
    assert isinstance(obj, dict)
    assert obj["kind"] == doc["kind"]
    # What would be stored (after defaulting) still says what the sample says: no field was pruned as
    # unknown. A Secret or ServiceAccount sample has no spec (and a Secret's stringData is stored as
    # data): accepted is what it shows.
    if "spec" in doc:
        assert _contains(obj["spec"], doc["spec"]), f"{label}: stored spec differs: {obj['spec']}"


def _contains(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            k in stored and _contains(stored[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(_contains(s, w) for s, w in zip(stored, wanted, strict=True))
        )
    return stored == wanted


def test_samples_exist_and_kustomization_lists_real_files() -> None:
    assert sample_docs(), "config/samples/ has no YAML objects"
    kust = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())
    for res in kust.get("resources") or []:
        assert (SAMPLES / res).is_file(), f"kustomization.yaml lists missing {res}"


def test_readme_yaml_objects_are_files_under_config() -> None:
    """Each Kubernetes object shown in the README is a document of some file under config/ (the samples
    among them are applied above), so the README cannot show YAML that no test has seen."""
    readme = (REPO / "README.md").read_text()
    known = [d for p in sorted((REPO / "config").rglob("*.yaml")) for d in _docs(p)]
    shown = [d for block in _YAML_BLOCK.findall(readme) for d in yaml.safe_load_all(block) if d]
    objects = [d for d in shown if isinstance(d, dict) and "apiVersion" in d and "kind" in d]
    missing = [f"{d['kind']} {d.get('metadata', {})}" for d in objects if d not in known]
    assert not missing, f"README objects not found under config/: {missing}"
