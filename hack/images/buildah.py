"""Builds Containerfiles with Debian's buildah into cached OCI layouts, in a private store.

The store (`~/.cache/model-image-push/buildah/`) keeps the base images and, with `--layers`, the
intermediate layers, so changing only `controller/` rebuilds one COPY layer, not apt and pip. RUN
steps use chroot isolation with the host's network: they need no runc and reach the same apt and
PyPI mirrors as the host.
"""

from __future__ import annotations

import configparser
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from hack.images import base
from hack.images.cache import Key, build_slot, cache_root, locked
from hack.images.oci import TAG, manifest_digest
from hack.images.proc import ImageBuildError, log_path, run

STORE_LOCK = "buildah-store"
BUILD_PIP_CERT = "/run/host-pip-ca.crt"


def _store() -> Path:
    return cache_root().parent / "buildah"


def _buildah(*args: str | Path) -> list[str | Path]:
    store = _store()
    return [
        "buildah",
        "--root",
        store / "root",
        "--runroot",
        store / "runroot",
        "--storage-driver",
        "overlay",
        *args,
    ]


def local_name(name: str, key: str) -> str:
    """The name an image has in the private store (`localhost/` keeps buildah from pulling it)."""
    return f"localhost/modelpush/{name}:{key}"


def _present(ref: str, log: Path) -> bool:
    try:
        run(_buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref), log)
        return True
    except ImageBuildError:  # "image not known"; any other trouble shows when the build uses it
        return False


def load(layout: Path) -> str:
    """Makes a cached layout available to FROM as its local name; returns that name."""
    name, key = layout.name.rsplit("-", 1)
    ref = local_name(name, key)
    log = log_path(f"buildah-{name}")
    with locked(STORE_LOCK):
        if not _present(ref, log):
            store = _store()
            dest = f"containers-storage:[overlay@{store / 'root'}+{store / 'runroot'}]{ref}"
            run(["skopeo", "copy", "--quiet", f"oci:{layout}:{TAG}", dest], log)
    return ref


def on_base(name: str, recipe: str, context: Mapping[str, Path], smoke: Sequence[Sequence[str]]) -> Path:
    """The cached layout of `context["Containerfile"]` built FROM the local base (`BASE_IMAGE`).

    `context` maps paths in the build context to host files; they, the base digest and the recipe
    make the key. Returns the layout, building it when missing.
    """
    base_layout = base.layout()
    key = Key(recipe).add("base", manifest_digest(base_layout).encode())
    for rel, src in sorted(context.items()):
        key.add_file(f"context/{rel}", src)
    digest = key.hexdigest()
    with build_slot(name, digest) as (final, tmp):
        if tmp is not None:
            ctx = tmp / "context"
            for rel, src in context.items():
                (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, ctx / rel)
            build(name, digest, ctx, ctx / "Containerfile", {"BASE_IMAGE": load(base_layout)}, tmp, smoke)
            shutil.rmtree(ctx)
    return final


def build(
    name: str,
    key: str,
    context: Path,
    containerfile: Path,
    build_args: Mapping[str, str],
    out: Path,
    smoke: Sequence[Sequence[str]] = (),
) -> None:
    """`buildah build` the context, run each `smoke` command in the result, write the layout to `out`."""
    ref = local_name(name, key)
    log = log_path(f"buildah-{name}")
    args = [f"--build-arg={k}={v}" for k, v in sorted(build_args.items())]
    args += _host_pip_trust()
    with locked(STORE_LOCK):
        run(
            _buildah(
                "build",
                "--isolation=chroot",
                "--network=host",
                "--layers",
                "--pull=never",
                *args,
                "-f",
                containerfile,
                "-t",
                ref,
                context,
            ),
            log,
        )
        for cmd in smoke:
            _smoke(ref, cmd, log)
        run(_buildah("push", "--quiet", ref, f"oci:{out}:{TAG}"), log)


def _host_pip_trust() -> list[str]:
    """Hands the host's pip CA bundle (a proxy's CA on some machines) to the build's pip as PIP_CERT.

    Mounted read-only for RUN steps only, so it never lands in a layer.
    """
    cert = os.environ.get("PIP_CERT")
    if not cert:
        conf = configparser.ConfigParser()
        conf.read(["/etc/pip.conf", Path.home() / ".config" / "pip" / "pip.conf"])
        cert = conf.get("global", "cert", fallback="")
    if not cert or not Path(cert).is_file():
        return []
    return [f"--volume={cert}:{BUILD_PIP_CERT}:ro", f"--build-arg=PIP_CERT={BUILD_PIP_CERT}"]


def _smoke(ref: str, cmd: Sequence[str], log: Path) -> None:
    """Runs `cmd` in a container of the image as the image's own user; a failure fails the build."""
    ctr = run(_buildah("from", "--pull=never", "--quiet", ref), log).strip()
    try:
        run(_buildah("run", "--isolation=chroot", ctr, "--", *cmd), log)
    finally:
        run(_buildah("rm", ctr), log)
