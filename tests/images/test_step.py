"""The step image for test Tasks: base + skopeo, non-root, apt caches left out."""

from __future__ import annotations

from hack.images import ensure
from hack.images.oci import file_names, image_config
from hack.registry import LocalRegistry


def test_step_has_skopeo_runs_non_root_and_drops_apt_caches(registry: LocalRegistry) -> None:
    image = ensure(["step"], registry.host)["step"]
    assert image_config(image.layout)["config"]["User"] == "65532:65532"
    names = file_names(image.layout)
    assert "usr/bin/skopeo" in names and "usr/bin/sha256sum" in names
    assert not any(n.startswith("var/cache/apt/") and n.endswith((".bin", ".deb")) for n in names)
    assert not any(n.startswith("var/lib/apt/lists/") and n.endswith("_Packages") for n in names)
