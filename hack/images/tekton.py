"""Tekton Pipelines' images, laid out as `ko` lays out the release's: one static binary per command.

Tekton's manifests start each Deployment from the image's entrypoint, and its pod builder runs
`/ko-app/entrypoint`, `/ko-app/workingdirinit` and `/ko-app/sidecarlogresults` by path, so each
binary lives at `/ko-app/<cmd>`. Under it is one small layer shared by all (the part of ko's
distroless `static` base these binaries use): `/etc/passwd` and `/etc/group` with the `nonroot`
user 65532 the manifests run as, and a world-writable `/tmp`. Binaries come from
`hack/tekton/build.sh --all` (Go module proxy, CGO_ENABLED=0).

The exception is `resolvers`: the release builds it on a base with tini and git (its Deployment starts
`/sbin/tini -- /ko-app/resolvers`; the git resolver runs `git`), so it is the local Debian base with those
two (`tekton-resolvers.Containerfile`, built with buildah) and the same binary at `/ko-app/resolvers`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hack.images import buildah
from hack.images.cache import Key, build_slot
from hack.images.oci import Entry, LayoutWriter
from hack.images.proc import ImageBuildError, log_path

RECIPE = "tekton/1"
REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "tekton" / "build.sh"
# The ko-style images (static binary over the shared layer); then every command with an image.
STATIC_COMMANDS = (
    "controller", "webhook", "events", "entrypoint", "nop", "workingdirinit", "sidecarlogresults",
)  # fmt: skip
COMMANDS = (*STATIC_COMMANDS, "resolvers")
RESOLVERS_RECIPE = "tekton-resolvers/1"
RESOLVERS_CONTAINERFILE = Path(__file__).with_name("tekton-resolvers.Containerfile")
# Run as the image's user (65532), as the Deployment does.
RESOLVERS_SMOKE = (["/sbin/tini", "--version"], ["git", "--version"], ["test", "-x", "/ko-app/resolvers"])
NONROOT = 65532
STATIC = (
    Entry(
        "etc/passwd",
        data=f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}::/home/nonroot:/sbin/nologin\n".encode(),
    ),
    Entry("etc/group", data=f"root:x:0:\nnonroot:x:{NONROOT}:\n".encode()),
    Entry("home/nonroot", 0o755, kind="dir"),
    Entry("tmp", 0o1777, kind="dir"),
)


def binaries_dir() -> Path:
    """Runs the (cached) Go build of every command; returns the directory holding them."""
    with open(log_path("tekton-build"), "ab") as log:
        proc = subprocess.run(["bash", str(BUILD), "--all"], stdout=subprocess.PIPE, stderr=log)
    if proc.returncode != 0:
        raise ImageBuildError(f"{BUILD} --all exited {proc.returncode}; see {log_path('tekton-build')}")
    return Path(proc.stdout.decode().strip().splitlines()[-1])


def image_name(cmd: str) -> str:
    return f"tekton-{cmd}"


def layout(cmd: str) -> Path:
    binary = binaries_dir() / cmd
    if cmd == "resolvers":
        context = {"Containerfile": RESOLVERS_CONTAINERFILE, "resolvers": binary}
        return buildah.on_base(image_name(cmd), RESOLVERS_RECIPE, context, RESOLVERS_SMOKE)
    key = Key(RECIPE).add("static", repr(STATIC).encode()).add_file("binary", binary).hexdigest()
    with build_slot(image_name(cmd), key) as (final, tmp):
        if tmp is not None:
            w = LayoutWriter(tmp)
            w.files_layer(list(STATIC), "static base: nonroot user, /tmp")
            w.files_layer([Entry(f"ko-app/{cmd}", 0o755, source=binary)], f"COPY {cmd} /ko-app/{cmd}")
            w.finish(
                {
                    "Entrypoint": [f"/ko-app/{cmd}"],
                    "Env": ["PATH=/ko-app:/usr/local/bin:/usr/bin:/bin", "KO_DATA_PATH=/var/run/ko"],
                    "User": str(NONROOT),
                    "Labels": {
                        "org.opencontainers.image.title": f"tekton {cmd} (github.com/tektoncd/pipeline)"
                    },
                }
            )
    return final
