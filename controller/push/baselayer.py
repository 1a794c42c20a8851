"""The default base layer: Debian's static busybox plus the applets KServe's modelcar commands call.

KServe runs a modelcar image twice with `sh -c`: the `modelcar-init` container checks
`[ -d /models ] && [ "$(ls -A /models)" ]`, and the sidecar runs `ln -sf /proc/$$/root/models /mnt/models
&& sleep infinity`. A bare image of model files cannot start either, so a native build without `base`
gets this layer: `/bin/busybox` (root-owned, 0755) and symlinks to it for each applet, all with mtime 0.
Nothing in the layer depends on the build (not even SOURCE_DATE_EPOCH), so its bytes and digest are a
constant for a given busybox binary, and registries dedupe and mount it across every model.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInput
from .tarlayer import DIR_MODE, END_OF_ARCHIVE, FilePart, LayerPlan, Part, tar_header

# Debian's busybox-static installs the binary here (the work image and hack/install-deps.sh install it).
DEFAULT_BUSYBOX = Path("/bin/busybox")
# KServe's commands need sh [ ls ln sleep; the rest makes `kubectl exec` debugging and probes workable.
APPLETS = (
    "[",
    "[[",
    "cat",
    "echo",
    "env",
    "false",
    "head",
    "id",
    "ln",
    "ls",
    "mkdir",
    "readlink",
    "sh",
    "sha256sum",
    "sleep",
    "test",
    "true",
    "wc",
)
# Fixed rather than SOURCE_DATE_EPOCH: the layer must be one digest for every model and every run.
MTIME = 0
TITLE = "busybox base (/bin/busybox and applets)"
# containerd and CRI-O fill PATH only when the image sets none; set it so `sh` resolves everywhere.
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# ELF e_machine -> OCI architecture, to refuse a busybox that cannot run on the target platform.
_ELF_ARCH = {3: "386", 8: "mips64le", 20: "ppc64le", 22: "s390x", 40: "arm", 62: "amd64", 183: "arm64"}


def busybox_path() -> Path:
    """MODELPUSH_BUSYBOX overrides the location (tests, other distributions)."""
    return Path(os.environ.get("MODELPUSH_BUSYBOX") or DEFAULT_BUSYBOX)


def elf_arch(head: bytes) -> str | None:
    """The OCI architecture of a little-endian ELF binary from its first 20 bytes, or None."""
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] != 1:
        return None
    return _ELF_ARCH.get(int.from_bytes(head[18:20], "little"))


def plan_base_layer(binary: Path, arch: str) -> LayerPlan:
    """The layer's parts: bin/ (0755), bin/busybox (0755, streamed from `binary`), bin/<applet> symlinks."""
    try:
        size = binary.stat().st_size
        with open(binary, "rb") as fh:
            head = fh.read(20)
    except OSError as exc:
        raise InvalidInput(
            f"the default base layer needs a static busybox at {binary} (Debian package busybox-static): "
            f"{exc.strerror}; install it, or set base to none or to an image"
        ) from exc
    found = elf_arch(head)
    if found != arch:
        raise InvalidInput(
            f"the default base layer's busybox ({binary}) is for {found or 'an unknown architecture'}, "
            f"not {arch}; set base to an image for {arch}, or to none"
        )
    parts: list[Part] = [
        tar_header("bin", "dir", mode=DIR_MODE, mtime=MTIME)
        + tar_header("bin/busybox", "file", size=size, mode=0o755, mtime=MTIME),
        FilePart(binary, size),
    ]
    links = b"".join(
        tar_header(f"bin/{name}", "symlink", mode=0o777, mtime=MTIME, target="busybox") for name in APPLETS
    )
    parts += [bytes(-size % 512) + links + END_OF_ARCHIVE]
    return LayerPlan(TITLE, tuple(parts))
