"""The list of images, how each is built, and `ensure`: build what is missing, push what is absent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hack.images import base, pause, project, step, tekton
from hack.images.publish import publish

REPO_PREFIX = "modelpush"

# name -> function that returns the cached layout, building it (and what it is built on) when missing.
BUILDERS: dict[str, Callable[[], Path]] = {
    "pause": pause.layout,
    "base": base.layout,
    "model-image-push": project.layout,
    "step": step.layout,
    **{tekton.image_name(cmd): partial(tekton.layout, cmd) for cmd in tekton.COMMANDS},
}
NAMES = tuple(BUILDERS)


@dataclass(frozen=True)
class Image:
    name: str
    repository: str  # registry/modelpush/<name>
    tag: str  # the content key
    digest: str
    layout: Path  # the cached OCI layout (e.g. for `ctr images import`)

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def ensure(names: Iterable[str], registry: str) -> dict[str, Image]:
    """Builds (when not cached) and pushes (when absent) each named image; returns them by name."""
    out: dict[str, Image] = {}
    for name in names:
        if name not in BUILDERS:
            raise KeyError(f"unknown image {name!r}; known: {', '.join(NAMES)}")
        layout = BUILDERS[name]()
        tag = layout.name.rsplit("-", 1)[1]
        repository = f"{registry}/{REPO_PREFIX}/{name}"
        digest = publish(layout, registry, f"{REPO_PREFIX}/{name}", tag)
        out[name] = Image(name, repository, tag, digest, layout)
    return out


@dataclass(frozen=True)
class Images:
    """The refs the cluster code needs."""

    pause: Image
    base: Image  # Debian bookworm minbase; also serves as Tekton's shell image
    project: Image  # the controller and work-pod image, from the Containerfile
    step: Image  # base + skopeo, non-root: for test Tasks
    tekton: dict[str, Image]  # by command: controller, webhook, events, entrypoint, nop, ...


def ensure_images(registry: str) -> Images:
    got = ensure(NAMES, registry)
    return Images(
        pause=got["pause"],
        base=got["base"],
        project=got["model-image-push"],
        step=got["step"],
        tekton={cmd: got[tekton.image_name(cmd)] for cmd in tekton.COMMANDS},
    )
