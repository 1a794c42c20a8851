"""config/: kustomizations point at real files; the settings ConfigMap loads.

No Go-built tool runs here (make test-unit builds nothing): `kubectl kustomize` is checked in
tests/e2e/test_config.py, and the ClusterRole against the controller's calls in tests/e2e/test_rbac.py.
"""

from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_kustomizations_list_existing_files() -> None:
    for kfile in CONFIG.rglob("kustomization.yaml"):
        data = yaml.safe_load(kfile.read_text())
        for res in data.get("resources", []):
            assert (kfile.parent / res).exists(), f"{kfile}: {res} missing"


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
