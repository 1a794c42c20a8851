"""The README's YAML must be the files under config/ (which tests apply), so the docs cannot rot."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def _config_docs() -> list[dict]:
    docs: list[dict] = []
    for path in sorted((REPO / "config").rglob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return docs


def test_every_readme_manifest_is_a_config_file() -> None:
    blocks = FENCE.findall((REPO / "README.md").read_text())
    manifests = [yaml.safe_load(b) for b in blocks]
    manifests = [m for m in manifests if isinstance(m, dict) and "apiVersion" in m]
    assert manifests, "the README shows no manifest"
    config = _config_docs()
    for m in manifests:
        assert m in config, f"README manifest {m['kind']}/{m['metadata']} is not a file under config/"
