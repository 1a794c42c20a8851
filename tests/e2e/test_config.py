"""config/ manifests are accepted by a real API server (server-side dry run, schema validation on), and
every overlay builds with the kubectl of the local cluster."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from controller.kube.client import KubeClient
from hack.localcluster.binaries import bin_dir
from tests.e2e.conftest import REPO
from tests.fixtures.cluster import wait_for

pytestmark = pytest.mark.cluster
CONFIG = REPO / "config"
# kind -> (API prefix, plural, namespaced); Pipeline/PipelineRun/ServiceMonitor need CRDs this cluster lacks
PATHS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "CustomRun": ("/apis/tekton.dev/v1beta1", "customruns", True),
    "ModelImagePush": ("/apis/modelpush.dev/v1alpha1", "modelimagepushes", True),
}
FILES = [  # the CRD itself is installed for real by _install_crd (that validates it)
    "rbac/service_account.yaml",
    "rbac/role.yaml",
    "rbac/role_binding.yaml",
    "manager/namespace.yaml",
    "manager/settings.yaml",
    "manager/deployment.yaml",
    "manager/service.yaml",
    "samples/customrun-build.yaml",
    "samples/customrun-copy.yaml",
    "samples/customrun-buildah.yaml",
    "samples/customrun-skopeo.yaml",
    "samples/modelimagepush-defaults.yaml",
]


def _path(doc: dict[str, Any], real_namespace: str) -> str:
    prefix, plural, namespaced = PATHS[doc["kind"]]
    return f"{prefix}/namespaces/{real_namespace}/{plural}" if namespaced else f"{prefix}/{plural}"


async def _install_crd(api: KubeClient) -> None:
    crd = yaml.safe_load((CONFIG / "crd" / "modelimagepushes.yaml").read_text())
    from controller.kube.client import ApiError

    try:
        await api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
    except ApiError as err:
        if not err.conflict:
            raise

    async def established() -> bool:
        obj = await api.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        )
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        )

    await wait_for(established, 60, "CRD established")


async def test_config_manifests_pass_server_side_dry_run(real_cluster, real_namespace) -> None:
    api = await KubeClient.create(str(real_cluster.kubeconfig))
    try:
        await _install_crd(api)
        checked = []
        for rel in FILES:
            for doc in yaml.safe_load_all((CONFIG / rel).read_text()):
                if not doc:
                    continue
                doc["metadata"].setdefault("namespace", real_namespace)
                if PATHS[doc["kind"]][2]:
                    doc["metadata"]["namespace"] = real_namespace  # the real one need not exist for a dry run
                else:
                    doc["metadata"]["name"] += f"-{real_namespace}"  # cluster-scoped: may exist already
                if "generateName" in doc["metadata"] and "name" not in doc["metadata"]:
                    doc["metadata"]["name"] = doc["metadata"].pop("generateName") + "dry"
                await api.request(
                    "POST", _path(doc, real_namespace), {"dryRun": "All", "fieldValidation": "Strict"}, doc
                )
                checked.append(f"{rel}:{doc['kind']}")
        assert len(checked) == len(FILES)
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("overlay", "kinds"),
    [
        (
            "default",
            {
                "Namespace",
                "CustomResourceDefinition",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ConfigMap",
                "Deployment",
                "Service",
            },
        ),
        ("prometheus", {"ServiceMonitor", "PrometheusRule"}),
        ("samples", {"ModelImagePush", "Pipeline"}),
    ],
)
def test_kustomize_builds(overlay: str, kinds: set[str]) -> None:
    out = subprocess.run(
        [str(bin_dir() / "kubectl"), "kustomize", str(CONFIG / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {d["kind"] for d in docs} == kinds
    if overlay == "default":
        ns = {
            d["metadata"].get("namespace")
            for d in docs
            if d["kind"] in ("Deployment", "ConfigMap", "Service")
        }
        assert ns == {"model-image-push-system"}
        dep = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
        c = dep["containers"][0]
        assert dep["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        # work pods follow the controller's image when an install retags it
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["MODELPUSH_WORK_IMAGE"] == c["image"]
