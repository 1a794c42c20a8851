"""The Debian bookworm base: `mmdebstrap --variant=minbase` from this machine's Debian apt sources.

Slimmed like Debian's `-slim` images (no docs, man pages or locales, through dpkg path excludes
that stay in the image, so later `apt-get install` steps are slim too). Plays the role of
`debian:bookworm-slim`, which cannot be pulled here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hack.images.cache import Key, build_slot
from hack.images.oci import Entry, LayoutWriter
from hack.images.proc import ImageBuildError, log_path, run

NAME = "base"
RECIPE = "base/4"
SUITE = "bookworm"
HOST_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
# Fixed, so mmdebstrap clamps file times and the same packages give the same layer.
SOURCE_DATE_EPOCH = "1735689600"
SLIM = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/groff/*",
)
# What Debian's own images carry as /etc/apt/apt.conf.d/docker-clean: apt's package caches (80 MB
# for a few packages) never stay in a layer. A layer of its own: inside mmdebstrap its Post-Invoke
# would run on the host and its cache settings would keep the caches in the rootfs.
_RM_CACHES = (
    "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"
)
APT_CLEAN = (
    f'DPkg::Post-Invoke {{ "{_RM_CACHES}"; }};\n'
    f'APT::Update::Post-Invoke {{ "{_RM_CACHES}"; }};\n'
    'Dir::Cache::pkgcache "";\n'
    'Dir::Cache::srcpkgcache "";\n'
)
CONFIG = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["bash"],
    "Labels": {"org.opencontainers.image.title": "model-image-push base (debian bookworm minbase)"},
}


def debian_sources(suite: str = SUITE) -> str:
    """The host's apt entries for `suite` (and its -updates/-security), in the host's own format."""
    for path in HOST_SOURCES:
        if not path.exists():
            continue
        text = path.read_text()
        if path.suffix == ".sources":
            stanzas = [s for s in text.split("\n\n") if _deb822_suites(s, suite)]
            if stanzas:
                return "\n\n".join(s.strip() for s in stanzas) + "\n"
        else:
            lines = [ln for ln in text.splitlines() if ln.startswith("deb ") and f" {suite}" in ln]
            if lines:
                return "\n".join(lines) + "\n"
    raise ImageBuildError(f"no apt source for Debian {suite} in {', '.join(map(str, HOST_SOURCES))}")


def _deb822_suites(stanza: str, suite: str) -> bool:
    for line in stanza.splitlines():
        if line.startswith("Suites:"):
            return any(s == suite or s.startswith(f"{suite}-") for s in line.split()[1:])
    return False


def _mmdebstrap_version() -> str:
    try:
        return subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError as exc:
        raise ImageBuildError(
            "mmdebstrap missing: apt-get install mmdebstrap (hack/install-deps.sh does)"
        ) from exc


def layout() -> Path:
    sources = debian_sources()
    key = (
        Key(RECIPE)
        .add("sources", sources.encode())
        .add("mmdebstrap", _mmdebstrap_version().encode())
        .add("slim", "\n".join(SLIM).encode())
        .add("apt-clean", APT_CLEAN.encode())
        .hexdigest()
    )
    with build_slot(NAME, key) as (final, tmp):
        if tmp is not None:
            _build(tmp, sources)
    return final


def _build(out: Path, sources: str) -> None:
    work = out / "work"
    work.mkdir()
    (work / "debian.sources").write_text(sources)
    rootfs = work / "rootfs.tar"
    run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--format=tar",
            *(f"--dpkgopt={opt}" for opt in SLIM),
            # mmdebstrap copies the host's resolv.conf and hostname in; the runtime provides both.
            '--customize-hook=: > "$1/etc/resolv.conf"; echo localhost > "$1/etc/hostname"',
            SUITE,
            rootfs,
            work / "debian.sources",
        ],
        log_path(NAME),
        env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    w = LayoutWriter(out)
    with open(rootfs, "rb") as f:
        w.tar_layer(f, f"mmdebstrap --variant=minbase {SUITE}")
    w.files_layer([Entry("etc/apt/apt.conf.d/docker-clean", data=APT_CLEAN.encode())], "COPY docker-clean")
    w.finish(CONFIG)
    rootfs.unlink()
    (work / "debian.sources").unlink()
    work.rmdir()
