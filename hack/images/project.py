"""The project image, built from the repo's real `Containerfile` on the mmdebstrap base.

Only what the Containerfile uses is staged as the build context (and hashed into the key), so a
change to tests or docs does not rebuild the image. The build fails unless the result runs the
controller's and the push program's `--help` as the image's non-root user.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hack.images import base, buildah
from hack.images.cache import Key, build_slot
from hack.images.oci import manifest_digest

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


def context_files(repo: Path = REPO) -> list[Path]:
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
    return files


def layout() -> Path:
    base_layout = base.layout()
    files = context_files()
    key = (
        Key(RECIPE)
        .add("base", manifest_digest(base_layout).encode())
        .add_tree("context", REPO, files)
        .hexdigest()
    )
    with build_slot(NAME, key) as (final, tmp):
        if tmp is not None:
            context = tmp / "context"
            for f in files:
                dest = context / f.relative_to(REPO)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
            out = tmp / "image"
            buildah.build(
                NAME,
                key,
                context,
                context / "Containerfile",
                {"BASE_IMAGE": buildah.load(base_layout)},
                out,
                SMOKE,
            )
            shutil.rmtree(context)
            for item in out.iterdir():
                item.rename(tmp / item.name)
            out.rmdir()
    return final
