"""Tekton's images: each command's static binary at /ko-app/<cmd>, non-root, over one shared layer (the
resolvers on the Debian base with tini and git, as the release's Deployment runs them); every `ko://` image
of the release manifests has a local image."""

from __future__ import annotations

import yaml

from hack.images import ensure
from hack.images.oci import file_names, image_config
from hack.images.tekton import COMMANDS, STATIC_COMMANDS, image_name
from hack.registry import LocalRegistry
from hack.tekton import incluster


def test_each_command_is_a_ko_style_image(registry: LocalRegistry) -> None:
    got = ensure([image_name(c) for c in STATIC_COMMANDS], registry.host)
    static = None
    for cmd in STATIC_COMMANDS:
        layout = got[image_name(cmd)].layout
        config = image_config(layout)
        assert config["config"]["Entrypoint"] == [f"/ko-app/{cmd}"]
        assert config["config"]["User"] == "65532"
        names = file_names(layout)
        assert {f"ko-app/{cmd}", "etc/passwd", "tmp"} <= names
        # the static layer is the same blob in every image, so a node pulls it once
        assert static in (None, config["rootfs"]["diff_ids"][0])
        static = config["rootfs"]["diff_ids"][0]


def test_resolvers_image_has_what_the_release_deployment_runs(registry: LocalRegistry) -> None:
    # The build itself ran /sbin/tini, git and a check of /ko-app/resolvers in the image as its user.
    layout = ensure([image_name("resolvers")], registry.host)[image_name("resolvers")].layout
    config = image_config(layout)["config"]
    assert config["Entrypoint"] == ["/sbin/tini", "--", "/ko-app/resolvers"]
    assert config["User"] == "65532:65532"
    assert "ko-app/resolvers" in file_names(layout)


def test_release_manifests_have_no_ko_reference_left(registry: LocalRegistry) -> None:
    got = ensure([image_name(c) for c in COMMANDS] + ["base"], registry.host)
    refs = {cmd: got[image_name(cmd)].ref for cmd in COMMANDS} | {"shell": got["base"].ref}
    text = yaml.safe_dump_all(incluster.release(refs))
    assert "ko://" not in text
    assert got["tekton-entrypoint"].ref in text and got["base"].ref in text
    assert got["tekton-resolvers"].ref in text
