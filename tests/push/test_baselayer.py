"""The default base layer: constant bytes, and KServe's own modelcar commands run on the pushed image.

The KServe proof here runs without a kubelet: the image is pulled by skopeo, unpacked by GNU tar, and
KServe's modelcar-init and sidecar args (read from the kserve module's storage.go) run in real mount and
PID namespaces as a non-root UID (tests/push/modelcar_sandbox.py). tests/cluster/test_kserve_modelcar.py
runs the same pod on real nodes.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest

from controller.push.baselayer import APPLETS, DEFAULT_BUSYBOX
from hack.kserve import modelcar_commands
from hack.registry import LocalRegistry

from .helpers import make_tree, run_build, skopeo_to_dir
from .modelcar_sandbox import apply_layers, run_modelcar_pod

pytestmark = pytest.mark.registry

# The layer's digest per Debian busybox-static version: the binary is the only input that varies.
# On a new version, push once, check the layer with `tar -tvf`, and add the row (README names the digest).
PINNED = {
    "1:1.35.0-4+deb12u1+b1": (
        "sha256:d01b9bf2c3877dd5357daaf87e8fbbae9d7688dc62c48b0778c57281c9c5faa7",
        1993728,
    ),
}
KSERVE_APPLETS = {"sh", "ln", "sleep", "ls", "[", "test", "mkdir"}


def busybox_version() -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "busybox-static"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kserve") / "model"
    root.mkdir()
    (root / "config.json").write_text('{"architectures": ["TinyForCausalLM"], "torch_dtype": "bfloat16"}\n')
    (root / "model.safetensors").write_bytes(hashlib.sha256(b"w").digest() * 40_000)
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer.json").write_text('{"v": 1}\n')
    return root


def _sums(root: Path, files: list[str]) -> str:
    return "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in files)


def test_base_layer_is_a_constant(registry: LocalRegistry, model: Path, tmp_path: Path) -> None:
    first = run_build(registry.host, model, "kserve/const-a:v1")
    other = run_build(registry.host, make_tree(tmp_path / "other"), "kserve/const-b:v1")
    assert first.rc == other.rc == 0, first.stderr + other.stderr
    a = skopeo_to_dir(f"{registry.host}/kserve/const-a:v1", tmp_path / "a", "--src-tls-verify=false")
    b = skopeo_to_dir(f"{registry.host}/kserve/const-b:v1", tmp_path / "b", "--src-tls-verify=false")
    bottom = a["layers"][0]
    assert bottom == b["layers"][0]  # another model, another repository: the same blob
    version = busybox_version()
    assert version in PINNED, f"busybox-static {version}: add its layer {bottom['digest']} to PINNED"
    assert (bottom["digest"], bottom["size"]) == PINNED[version]

    with tarfile.open(tmp_path / "a" / bottom["digest"].split(":")[1]) as tf:
        members = {m.name: m for m in tf.getmembers()}
        busybox = members.pop("bin/busybox")
        assert busybox.isfile() and busybox.mode == 0o755
        assert tf.extractfile(busybox).read() == DEFAULT_BUSYBOX.read_bytes()  # type: ignore[union-attr]
    bindir = members.pop("bin")
    assert bindir.isdir() and bindir.mode == 0o755
    assert all(m.issym() and m.linkname == "busybox" for m in members.values())
    assert KSERVE_APPLETS <= {name.removeprefix("bin/") for name in members} == set(APPLETS)
    every = [bindir, busybox, *members.values()]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in every} == {(0, 0, "", "", 0)}


def test_base_none_is_bare_and_base_ref_is_unchanged(
    registry: LocalRegistry, model: Path, tmp_path: Path
) -> None:
    bare = run_build(registry.host, model, "kserve/bare:v1", "--base", "none")
    assert bare.rc == 0, bare.stderr
    manifest = skopeo_to_dir(f"{registry.host}/kserve/bare:v1", tmp_path / "bare", "--src-tls-verify=false")
    titles = [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]]
    assert sorted(titles) == ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]


def test_kserve_commands_run_on_the_default_image(
    registry: LocalRegistry, model: Path, tmp_path: Path
) -> None:
    image = f"{registry.host}/kserve/served:v1"
    assert run_build(registry.host, model, "kserve/served:v1").rc == 0
    manifest = skopeo_to_dir(image, tmp_path / "pulled", "--src-tls-verify=false")
    rootfs = tmp_path / "rootfs"
    apply_layers(tmp_path / "pulled", manifest, rootfs)
    files = ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]
    cmds = modelcar_commands(image)
    run = run_modelcar_pod(rootfs, tmp_path / "pod", cmds, files, DEFAULT_BUSYBOX)
    assert run.init_rc == 0, run.init_out
    assert "OK ... Prefetched and valid" in run.init_out
    assert run.link.startswith("/proc/") and run.link.endswith("/root/models"), run.link
    assert run.server_rc == 0, run.server_out
    assert run.server_out == _sums(model, files)


def test_kserve_commands_run_on_a_debian_based_image(
    registry: LocalRegistry, model: Path, tmp_path: Path
) -> None:
    """`base: <Debian image>` from the local registry (hack/images, from the real-node branch) serves too."""
    catalog = pytest.importorskip(
        "hack.images.catalog", reason="the Debian base image comes from hack/images"
    )
    debian = catalog.ensure(["base"], registry.host)["base"].ref
    image = f"{registry.host}/kserve/on-debian:v1"
    run = run_build(registry.host, model, "kserve/on-debian:v1", "--base", debian)
    assert run.rc == 0, run.stderr
    manifest = skopeo_to_dir(image, tmp_path / "pulled", "--src-tls-verify=false")
    rootfs = tmp_path / "rootfs"
    apply_layers(tmp_path / "pulled", manifest, rootfs)
    assert not (rootfs / "bin" / "busybox").exists()  # the base replaces the busybox layer
    files = ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]
    pod = run_modelcar_pod(rootfs, tmp_path / "pod", modelcar_commands(image), files, DEFAULT_BUSYBOX)
    assert pod.init_rc == 0, pod.init_out
    assert pod.server_rc == 0 and pod.server_out == _sums(model, files), pod.server_out


def test_kserve_init_fails_on_a_bare_image(registry: LocalRegistry, model: Path, tmp_path: Path) -> None:
    image = f"{registry.host}/kserve/bare-init:v1"
    assert run_build(registry.host, model, "kserve/bare-init:v1", "--base", "none").rc == 0
    manifest = skopeo_to_dir(image, tmp_path / "pulled", "--src-tls-verify=false")
    rootfs = tmp_path / "rootfs"
    apply_layers(tmp_path / "pulled", manifest, rootfs)
    run = run_modelcar_pod(
        rootfs, tmp_path / "pod", modelcar_commands(image), ["config.json"], DEFAULT_BUSYBOX
    )
    # No shell in the image: the container cannot even start its command (exit 127, as a runtime reports).
    assert run.init_rc == 127, run.init_out
    assert "sh" in run.init_out
    assert run.server_rc == -1  # never started
