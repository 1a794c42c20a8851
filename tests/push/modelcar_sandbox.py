"""KServe's modelcar pod without a kubelet: the pushed image's rootfs, KServe's own commands, real namespaces.

What a modelcar pod does, and how this reproduces it with util-linux and coreutils:
- image rootfs: the image pulled by skopeo, its layers applied in order with GNU tar (as root, so owners
  and modes are the image's);
- `shareProcessNamespace: true`: one PID namespace (`unshare --pid --fork`) with its own /proc;
- the emptyDir at the model path's parent: one host directory (mode 0777, as kubelet makes it) bind-mounted
  into both the modelcar rootfs and the server's rootfs;
- containers: `chroot --userspec UID:UID` into the rootfs, all with the same non-root UID (KServe #4995);
- the server: a second rootfs (busybox only) that reads every model file through the symlink the sidecar
  made, `/mnt/models -> /proc/<sidecar pid>/root/models`, and prints their sha256.
Everything runs in a private mount namespace, so the mounts vanish with it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hack.kserve import ModelcarCommands

UID = 1000


def apply_layers(layout: Path, manifest: dict, rootfs: Path) -> None:
    """Unpack a `skopeo copy ... dir:` image into `rootfs`, bottom layer first."""
    rootfs.mkdir(parents=True, exist_ok=True)
    for layer in manifest["layers"]:
        blob = layout / layer["digest"].split(":", 1)[1]
        subprocess.run(["tar", "-xf", str(blob), "-C", str(rootfs)], check=True)


@dataclass
class PodRun:
    init_rc: int
    init_out: str
    server_rc: int
    server_out: str  # `sha256sum` lines of the files read through the model path
    link: str  # the sidecar's symlink as the server saw it


# Runs inside the new mount+PID namespaces. $INIT/$SIDECAR are shell-quoted words, so `eval set --` gives
# each container exactly the args KServe gives it.
_DRIVER = r"""
set -u
for root in "$IMG" "$SRV"; do
  mkdir -p "$root/proc" "$root$MOUNT_DIR"
  mount -t proc proc "$root/proc"
  mount --bind "$EMPTY" "$root$MOUNT_DIR"
done
eval "set -- $INIT"
chroot --userspec=$UID:$UID "$IMG" "$@" > "$OUT/init.log" 2>&1
echo $? > "$OUT/init.rc"
[ "$(cat "$OUT/init.rc")" = 0 ] || exit 0   # like the kubelet: no containers after a failed init container
eval "set -- $SIDECAR"
chroot --userspec=$UID:$UID "$IMG" "$@" > "$OUT/sidecar.log" 2>&1 &
sidecar=$!
for _ in $(seq 100); do [ -L "$EMPTY/${MODEL_PATH##*/}" ] && break; sleep 0.1; done
chroot --userspec=$UID:$UID "$SRV" /bin/sh -c "$SERVER" > "$OUT/server.log" 2>&1
echo $? > "$OUT/server.rc"
kill $sidecar
wait
"""


def run_modelcar_pod(
    rootfs: Path, work: Path, cmds: ModelcarCommands, files: list[str], busybox: Path
) -> PodRun:
    """Run modelcar-init, then the sidecar and the server, as KServe's pod would; `files` are model paths."""
    server_root, empty, out = work / "server-root", work / "emptydir", work / "out"
    (server_root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, server_root / "bin" / "busybox")
    for applet in ("sh", "readlink", "sha256sum"):
        (server_root / "bin" / applet).symlink_to("busybox")
    empty.mkdir()
    empty.chmod(0o777)
    out.mkdir()
    model = cmds.model_path
    server = f"readlink {model}; cd {model}/ && sha256sum " + " ".join(shlex.quote(f) for f in files)
    env = {
        "IMG": str(rootfs),
        "SRV": str(server_root),
        "EMPTY": str(empty),
        "OUT": str(out),
        "UID": str(UID),
        "MOUNT_DIR": cmds.mount_dir,
        "MODEL_PATH": model,
        "INIT": shlex.join(cmds.init_args),
        "SIDECAR": shlex.join(cmds.sidecar_args),
        "SERVER": server,
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", _DRIVER],
        env=env,
        check=True,
        timeout=120,
    )

    def read(name: str, default: str = "") -> str:
        p = out / name
        return p.read_text() if p.exists() else default

    server_out = read("server.log")
    link, _, sums = server_out.partition("\n")
    return PodRun(
        init_rc=int(read("init.rc", "-1")),
        init_out=read("init.log"),
        server_rc=int(read("server.rc", "-1")),
        server_out=sums,
        link=link,
    )
