"""Tekton's images: each command's static binary at /ko-app/<cmd>, non-root, over one shared layer."""

from __future__ import annotations

from hack.images import ensure
from hack.images.oci import file_names, image_config
from hack.images.tekton import COMMANDS, image_name
from hack.registry import LocalRegistry


def test_each_command_is_a_ko_style_image(registry: LocalRegistry) -> None:
    got = ensure([image_name(c) for c in COMMANDS], registry.host)
    static = None
    for cmd in COMMANDS:
        layout = got[image_name(cmd)].layout
        config = image_config(layout)
        assert config["config"]["Entrypoint"] == [f"/ko-app/{cmd}"]
        assert config["config"]["User"] == "65532"
        names = file_names(layout)
        assert {f"ko-app/{cmd}", "etc/passwd", "tmp"} <= names
        # the static layer is the same blob in every image, so a node pulls it once
        assert static in (None, config["rootfs"]["diff_ids"][0])
        static = config["rootfs"]["diff_ids"][0]
