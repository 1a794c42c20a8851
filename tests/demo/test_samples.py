"""Every object under config/samples/ is accepted by a real apiserver (with Tekton's and the project's CRDs
installed), and every Kubernetes YAML block in the README is one of the files under config/, so the docs
cannot drift from what is tested."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from hack.localcluster.rest import Rest
from hack.tekton.apply import apply_manifest, wait_crds_established
from hack.tekton.launcher import install as install_tekton
from tests.fixtures.cluster import ClusterInfo

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
async def crds(cluster: ClusterInfo, kube_api: client.ApiClient, policy_crd: Path) -> None:
    """Tekton's release CRDs (as the tekton fixture installs them) plus the project's own CRDs."""
    await install_tekton(cluster.kubeconfig)
    names = []
    for path in sorted(PROJECT_CRDS.glob("*.yaml")):
        for doc in _docs(path):
            if doc.get("kind") == "CustomResourceDefinition":
                await apply_manifest(kube_api, doc)
                names.append(doc["metadata"]["name"])
    # signing (issue 13): the ClusterImagePolicy sample is checked against sigstore policy-controller's
    # own CRD (from its Go module). Its conversion webhook is not running here; the versions share one
    # schema shape, so conversion None is enough to validate and store the sample.
    for doc in _docs(policy_crd):
        doc["spec"]["conversion"] = {"strategy": "None"}
        await apply_manifest(kube_api, doc)
        names.append(doc["metadata"]["name"])
    await wait_crds_established(kube_api, names)


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
    label: str, doc: dict[str, Any], crds: None, cluster: ClusterInfo, namespace: str
) -> None:
    rest = cluster.local.rest()
    path = _resource_path(rest, doc["apiVersion"], doc["kind"], namespace)
    # Samples use generateName (so they can be created repeatedly), which server-side apply cannot do:
    # POST them as they are, the way `kubectl create -f` does.
    code, obj = rest.request("POST", path, doc)
    assert code == 201, f"{label} ({doc['kind']}) rejected: HTTP {code}: {obj}"
    assert isinstance(obj, dict)
    assert obj["kind"] == doc["kind"]
    # What was stored is what the sample says (no field was pruned as unknown). A Secret or ServiceAccount
    # sample has no spec (and a Secret's stringData is stored as data): accepted is what it shows.
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
