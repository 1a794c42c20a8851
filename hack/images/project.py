"""The project image, built from the repo's real `Containerfile` on the mmdebstrap base.

Only what the Containerfile uses is staged as the build context (and hashed into the key), so a
change to tests or docs does not rebuild the image. The build fails unless the result runs the
controller's and the push program's `--help` as the image's non-root user.
"""

from __future__ import annotations

from pathlib import Path

from hack.images import buildah

NAME = "model-image-push"
RECIPE = "project/1"
REPO = Path(__file__).resolve().parents[2]
CONTEXT = ("Containerfile", "requirements.lock", "controller")
USER = "65532"
SMOKE = (
    ["sh", "-c", f'test "$(id -u)" = {USER} || {{ echo "runs as uid $(id -u), not {USER}"; exit 1; }}'],
    ["python3", "-m", "controller", "--help"],
    ["python3", "-m", "controller.push", "--help"],
    ["skopeo", "--version"],
    ["buildah", "--version"],
)


def context_files(repo: Path = REPO) -> dict[str, Path]:
    """Build-context path -> repo file, for exactly what the Containerfile copies."""
    files: list[Path] = []
    for entry in CONTEXT:
        path = repo / entry
        if path.is_dir():
            files += [
                f
                for f in path.rglob("*")
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
            ]
        else:
            files.append(path)
    return {f.relative_to(repo).as_posix(): f for f in files}


def layout() -> Path:
    return buildah.on_base(NAME, RECIPE, context_files(), SMOKE)
