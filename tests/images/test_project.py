"""The project image from the real Containerfile on the mmdebstrap base: non-root, runtime packages only.

The build itself runs `python3 -m controller --help` and `python3 -m controller.push --help` as the
image's user (hack/images/project.py SMOKE), so a layout that exists passed them.
"""

from __future__ import annotations

import pytest

from hack.images import ensure
from hack.images.oci import file_names, image_config
from hack.registry import LocalRegistry


@pytest.fixture(scope="module")
def project(registry: LocalRegistry):
    return ensure(["model-image-push"], registry.host)["model-image-push"]


def test_runs_as_non_root_with_the_controller_entrypoint(project) -> None:
    config = image_config(project.layout)["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["python3", "-m"]
    assert "HOME=/tmp" in config["Env"]


def test_carries_runtime_packages_and_no_test_or_lint_tools(project) -> None:
    names = file_names(project.layout)
    site = "opt/venv/lib/python3.11/site-packages"
    for runtime in ("aiohttp", "kubernetes_asyncio", "pydantic", "prometheus_client", "yaml"):
        assert f"{site}/{runtime}/__init__.py" in names, runtime
    for dev in ("pytest", "_pytest", "ruff", "bcrypt", "pytest_asyncio"):
        assert not any(n.startswith(f"{site}/{dev}/") for n in names), dev
    assert "opt/app/controller/__main__.py" in names
    assert "usr/bin/skopeo" in names and "usr/bin/buildah" in names


def test_built_on_the_local_base(project, registry: LocalRegistry) -> None:
    base = ensure(["base"], registry.host)["base"]
    base_layers = image_config(base.layout)["rootfs"]["diff_ids"]
    assert image_config(project.layout)["rootfs"]["diff_ids"][: len(base_layers)] == base_layers
