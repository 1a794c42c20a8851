"""Which images can "run" here, and what their entrypoint is (there is no container runtime)."""

import json
import re
from collections.abc import Sequence

# Image-name fragment -> entrypoint used when the pod gives no `command`.
ENTRYPOINTS: dict[str, list[str]] = {
    "model-image-push": ["python3", "-m", "controller.push"],
    "buildah": ["buildah"],
    "skopeo": ["skopeo"],
}


class ImageNotAllowed(Exception):
    pass


class InvalidImageName(ImageNotAllowed):
    """The kubelet's InvalidImageName: the name is no image reference (a container waiting reason)."""


# distribution/reference's grammar, which the kubelet applies before any pull (images.applyDefaultImageTag)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
)
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def check_reference(image: str) -> None:
    if not _REFERENCE.match(image):
        quoted = json.dumps(image)  # Go's %q
        raise InvalidImageName(
            f"Failed to apply default image tag {quoted}: couldn't parse image name {quoted}: "
            "invalid reference format"
        )


def resolve_argv(image: str, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
    """Kubelet semantics: `command` replaces the entrypoint, `args` replaces the image's default args."""
    check_reference(image)
    name = image.rsplit("@", 1)[0]
    entry = next((ep for frag, ep in ENTRYPOINTS.items() if frag in name), None)
    if entry is None:
        allowed = ", ".join(ENTRYPOINTS)
        raise ImageNotAllowed(
            f'Failed to pull image "{image}": not available on this local node (names containing: {allowed})'
        )
    argv = list(command) if command else list(entry)
    return argv + list(args or [])
