"""The step image for test Tasks: the local Debian base plus skopeo, as a non-root user.

Built with buildah from `step.Containerfile`; the build fails unless skopeo runs in the result.
"""

from __future__ import annotations

from pathlib import Path

from hack.images import buildah

NAME = "step"
RECIPE = "step/1"
CONTAINERFILE = Path(__file__).with_name("step.Containerfile")
SMOKE = (["skopeo", "--version"], ["sha256sum", "--version"])


def layout() -> Path:
    return buildah.on_base(NAME, RECIPE, {"Containerfile": CONTAINERFILE}, SMOKE)
