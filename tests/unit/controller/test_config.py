"""config/: kustomizations point at real files; the ClusterRole grants exactly what controller/kube/ calls."""

import subprocess
from pathlib import Path

import pytest
import yaml

from hack.localcluster.binaries import bin_dir

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_kustomizations_list_existing_files() -> None:
    for kfile in CONFIG.rglob("kustomization.yaml"):
        data = yaml.safe_load(kfile.read_text())
        for res in data.get("resources", []):
            assert (kfile.parent / res).exists(), f"{kfile}: {res} missing"


def test_role_grants_what_the_code_calls() -> None:
    role = yaml.safe_load((CONFIG / "rbac" / "role.yaml").read_text())
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:  # a resource may appear in several rules (each with its own reason)
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                grants.setdefault((g, r), set()).update(rule["verbs"])
    assert grants[("tekton.dev", "customruns")] == {"get", "list", "watch"}
    assert grants[("tekton.dev", "customruns/status")] == {"patch"}
    assert grants[("", "pods")] == {"get", "list", "watch", "create", "delete"}
    assert grants[("coordination.k8s.io", "leases")] == {"get", "create", "update"}
    assert grants[("", "events")] == {"create"}
    for preflight in ("persistentvolumeclaims", "persistentvolumes", "configmaps"):
        assert grants[("", preflight)] == {"get"}, preflight
    # registry-secret preflight and the signing key (get); the per-run key copy (create, delete)
    assert grants[("", "secrets")] == {"get", "create", "delete"}
    assert all("*" not in verbs for verbs in grants.values())


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


def test_settings_configmap_loads(tmp_path, monkeypatch) -> None:
    from controller.settings import Settings

    cm = yaml.safe_load((CONFIG / "manager" / "settings.yaml").read_text())
    text = cm["data"]["settings.yaml"]
    unknown = set(yaml.safe_load(text)) - set(Settings.model_fields)
    assert not unknown, f"settings keys the controller does not know: {unknown}"
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    monkeypatch.setenv("MODELPUSH_CONFIG_FILE", str(path))
    s = Settings()
    assert s.lease_namespace == "model-image-push-system" and s.compat_storage_ceiling == 200 * 1024**3
