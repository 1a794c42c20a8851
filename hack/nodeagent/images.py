"""Which images can "run" here, and what their entrypoint is (there is no container runtime)."""

from collections.abc import Sequence

# Image-name fragment -> entrypoint used when the pod gives no `command`.
ENTRYPOINTS: dict[str, list[str]] = {
    "model-image-push": ["python3", "-m", "controller.push"],
    "buildah": ["buildah"],
    "skopeo": ["skopeo"],
}


class ImageNotAllowed(Exception):
    pass


def resolve_argv(image: str, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
    """Kubelet semantics: `command` replaces the entrypoint, `args` replaces the image's default args."""
    name = image.rsplit("@", 1)[0]
    entry = next((ep for frag, ep in ENTRYPOINTS.items() if frag in name), None)
    if entry is None:
        allowed = ", ".join(ENTRYPOINTS)
        raise ImageNotAllowed(
            f'Failed to pull image "{image}": not available on this local node (names containing: {allowed})'
        )
    argv = list(command) if command else list(entry)
    return argv + list(args or [])
