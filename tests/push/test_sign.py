"""Signing and SLSA provenance against a real registry, checked by the real cosign.

Keys come from `cosign generate-key-pair`; `cosign verify` and `cosign verify-attestation` (built by
hack/build-cosign.sh) are the judges. There is no transparency log here, hence --insecure-ignore-tlog.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.ports import free_port
from hack.registry import LocalRegistry
from tests.fixtures.cosign import keypair, statement, verify, verify_attestation

from .helpers import run_build, run_cli
from .test_copy import push_index

pytestmark = pytest.mark.registry
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def keys(cosign: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keypair(cosign, tmp_path_factory.mktemp("keys"), PASSWORD)


@pytest.fixture(scope="module")
def other_keys(cosign: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keypair(cosign, tmp_path_factory.mktemp("otherkeys"), "another password")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signmodel") / "model"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"arch": "tiny"}')
    (root / "sub" / "weights.bin").write_bytes(os.urandom(300_000))
    return root


def _sign_flags(keys: Path, *extra: str) -> list[str]:
    context = {
        "params": {"source": "dir:///workspace/model", "sign": "true"},
        "builder": {"id": "test/model-image-push:dev", "version": {"model-image-push": "dev"}},
        "invocation": {"namespace": "ns", "name": "run-1", "uid": "uid-1"},
        "startedOn": "2026-12-01T12:00:00Z",
    }
    return [
        "--sign-key",
        str(keys / "cosign.key"),
        "--sign-password-file",
        str(keys / "cosign.password"),
        "--sign-key-source",
        "model-image-push-system/signing-secrets",
        "--provenance-context",
        json.dumps(context),
        *extra,
    ]


@pytest.fixture(scope="module")
def signed(registry: LocalRegistry, model: Path, keys: Path) -> dict:
    run = run_build(registry.host, model, "signed/model:v1", *_sign_flags(keys))
    assert run.rc == 0, run.stderr
    return run.result


def test_signed_push_verifies_with_cosign(cosign: str, keys: Path, signed: dict) -> None:
    assert signed["signing_error"] is None
    assert signed["signature_ref"].startswith(signed["url"].split("@")[0] + "@sha256:")
    out = verify(cosign, keys / "cosign.pub", signed["url"])
    assert out.returncode == 0, out.stderr
    (claim,) = json.loads(out.stdout)
    assert claim["critical"]["image"]["docker-manifest-digest"] == signed["digest"]
    by_tag = verify(cosign, keys / "cosign.pub", signed["image"])
    assert by_tag.returncode == 0, by_tag.stderr


def test_provenance_verifies_and_names_every_model_file(
    cosign: str, keys: Path, signed: dict, model: Path
) -> None:
    out = verify_attestation(cosign, keys / "cosign.pub", signed["url"])
    assert out.returncode == 0, out.stderr
    st = statement(out.stdout)
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    assert [s["digest"]["sha256"] for s in st["subject"]] == [signed["digest"].split(":")[1]]
    deps = {d["name"]: d for d in st["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert set(deps) == {"models/config.json", "models/sub/weights.bin"}
    for rel in ("config.json", "sub/weights.bin"):
        data = (model / rel).read_bytes()
        assert deps[f"models/{rel}"]["digest"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert deps[f"models/{rel}"]["annotations"]["size"] == len(data)
        assert deps[f"models/{rel}"]["uri"] == f"dir:///workspace/model/{rel}"
    rd = st["predicate"]["runDetails"]
    assert rd["builder"]["id"] == "test/model-image-push:dev"
    assert rd["metadata"]["invocationId"] == "k8s://ns/customruns/run-1/uid-1"


def test_another_key_does_not_verify(cosign: str, other_keys: Path, signed: dict) -> None:
    assert verify(cosign, other_keys / "cosign.pub", signed["url"]).returncode != 0
    assert verify_attestation(cosign, other_keys / "cosign.pub", signed["url"]).returncode != 0


def test_unsigned_push_does_not_verify(cosign: str, registry: LocalRegistry, model: Path, keys: Path) -> None:
    run = run_build(registry.host, model, "unsigned/model:v1")
    assert run.rc == 0, run.stderr
    assert run.result.get("signature_ref") is None
    out = verify(cosign, keys / "cosign.pub", run.result["url"])
    assert out.returncode != 0
    assert "no signatures found" in out.stderr or "no matching signatures" in out.stderr, out.stderr
    assert verify_attestation(cosign, keys / "cosign.pub", run.result["url"]).returncode != 0


def test_second_key_appends_and_both_verify(
    cosign: str, registry: LocalRegistry, model: Path, keys: Path, other_keys: Path
) -> None:
    first = run_build(registry.host, model, "signed/twice:v1", *_sign_flags(keys))
    second = run_build(registry.host, model, "signed/twice:v1", *_sign_flags(other_keys))
    assert first.rc == second.rc == 0
    assert first.result["digest"] == second.result["digest"]
    for k in (keys, other_keys):
        assert verify(cosign, k / "cosign.pub", second.result["url"]).returncode == 0


def test_signed_copy_verifies(
    cosign: str, registry: LocalRegistry, second_registry: LocalRegistry, signed: dict, keys: Path
) -> None:
    dst = f"{second_registry.host}/copied/model:v1"
    run = run_cli(
        "copy",
        signed["url"],
        dst,
        "--insecure-registry",
        registry.host,
        "--insecure-registry",
        second_registry.host,
        *_sign_flags(keys),
    )
    assert run.rc == 0, run.stderr
    assert run.result["digest"] == signed["digest"]
    assert verify(cosign, keys / "cosign.pub", run.result["url"]).returncode == 0
    out = verify_attestation(cosign, keys / "cosign.pub", run.result["url"])
    assert out.returncode == 0, out.stderr
    (dep,) = statement(out.stdout)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert dep == {"uri": f"docker://{signed['url']}", "digest": {"sha256": signed["digest"].split(":")[1]}}


@pytest.mark.parametrize(
    ("breakage", "expect"),
    [
        (
            "wrong-password",
            "key cosign.key in Secret model-image-push-system/signing-secrets: wrong password",
        ),
        ("no-key", "signing key cosign.key not found in Secret model-image-push-system/signing-secrets"),
        (
            "not-a-key",
            "key cosign.key in Secret model-image-push-system/signing-secrets: not a cosign private key",
        ),
    ],
)
def test_bad_key_keeps_the_push_and_reports_signing_error(
    registry: LocalRegistry, model: Path, keys: Path, tmp_path: Path, breakage: str, expect: str
) -> None:
    broken = tmp_path / "keys"
    broken.mkdir()
    key_text = (keys / "cosign.key").read_text()
    if breakage != "no-key":
        (broken / "cosign.key").write_text(key_text if breakage == "wrong-password" else "garbage")
    (broken / "cosign.password").write_text("not the password")
    run = run_build(registry.host, model, f"badkey/{breakage}:v1", *_sign_flags(broken))
    assert run.rc == 0, run.stderr
    assert run.result["digest"].startswith("sha256:")
    assert run.result["signing_error"].startswith(expect), run.result["signing_error"]
    assert run.result["signature_ref"] is None
    body = key_text.splitlines()[1]
    for text in (run.stdout, run.stderr):
        assert body not in text and "not the password" not in text


def test_referrers_storage_falls_back_to_the_tag_without_the_referrers_api(
    cosign: str, registry: LocalRegistry, model: Path, keys: Path
) -> None:
    """Debian's docker-registry 2.8 has no referrers API: the signature goes to the tag, still verifiable."""
    run = run_build(
        registry.host, model, "signed/referrers:v1", *_sign_flags(keys, "--signature-storage", "referrers")
    )
    assert run.rc == 0, run.stderr
    assert "referrers-unsupported" in run.stderr
    assert run.result["signature_ref"] and run.result["signing_error"] is None
    assert verify(cosign, keys / "cosign.pub", run.result["url"]).returncode == 0
    assert verify_attestation(cosign, keys / "cosign.pub", run.result["url"]).returncode == 0


async def test_signed_index_copy_verifies_by_the_index_digest(
    cosign: str, registry: LocalRegistry, second_registry: LocalRegistry, keys: Path, tmp_path: Path
) -> None:
    """A multi-arch index: IMAGE_DIGEST is the index's, and the signature and provenance subject are too."""
    index = await push_index(registry, tmp_path, "signsrc/multi")
    dst = f"{second_registry.host}/signed/multi:v1"
    flags = ["--insecure-registry", registry.host, "--insecure-registry", second_registry.host]
    run = await asyncio.to_thread(
        run_cli, "copy", f"{registry.host}/signsrc/multi@{index}", dst, *flags, *_sign_flags(keys)
    )
    assert run.rc == 0, run.stderr
    assert run.result["digest"] == index
    assert (await asyncio.to_thread(verify, cosign, keys / "cosign.pub", run.result["url"])).returncode == 0
    out = await asyncio.to_thread(verify_attestation, cosign, keys / "cosign.pub", run.result["url"])
    assert out.returncode == 0, out.stderr
    assert [s["digest"]["sha256"] for s in statement(out.stdout)["subject"]] == [index.split(":")[1]]


@pytest.fixture(scope="module")
def referrers_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """go-containerregistry's registry with the referrers API on (hack/build-referrers-registry.sh)."""
    binary = subprocess.run(
        ["bash", "hack/build-referrers-registry.sh"], capture_output=True, text=True, check=True
    ).stdout.strip()
    port = free_port()
    log = (tmp_path_factory.mktemp("refreg") / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "-port", str(port)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "referrers registry did not start"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_referrers_storage_where_the_registry_has_the_api(
    cosign: str, referrers_registry: str, model: Path, keys: Path
) -> None:
    host = referrers_registry
    run = run_build(host, model, "ref/model:v1", *_sign_flags(keys, "--signature-storage", "referrers"))
    assert run.rc == 0, run.stderr
    assert "referrers-unsupported" not in run.stderr
    url, digest = run.result["url"], run.result["digest"]
    req = urllib.request.Request(
        f"http://{host}/v2/ref/model/referrers/{digest}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        referrers = {m["digest"] for m in json.load(resp)["manifests"]}
    assert run.result["signature_ref"].split("@")[1] in referrers
    assert run.result["attestation_ref"].split("@")[1] in referrers
    with urllib.request.urlopen(f"http://{host}/v2/ref/model/tags/list", timeout=10) as resp:
        tags = json.load(resp)["tags"]
    assert f"sha256-{digest.split(':')[1]}.sig" not in tags  # the signature lives only as a referrer
    assert verify(cosign, keys / "cosign.pub", url, "--experimental-oci11").returncode == 0
    assert verify(cosign, keys / "cosign.pub", url).returncode != 0  # without OCI 1.1 cosign finds no tag
    assert verify_attestation(cosign, keys / "cosign.pub", url, "--experimental-oci11").returncode == 0


def test_format_both_signs_the_image_and_the_index(
    cosign: str, registry: LocalRegistry, model: Path, keys: Path
) -> None:
    """`format: both`: the tag is an index over the modelcar and the ModelPack manifest; a policy may
    resolve the tag (the index) or pin IMAGE_DIGEST (the image), so both carry signature and provenance."""
    run = run_build(registry.host, model, "signed/both:v1", "--format", "both", *_sign_flags(keys))
    assert run.rc == 0, run.stderr
    image, index = run.result["digest"], run.result["index_digest"]
    assert index and index != image
    repo = f"{registry.host}/signed/both"
    for digest in (image, index):
        assert verify(cosign, keys / "cosign.pub", f"{repo}@{digest}").returncode == 0
        out = verify_attestation(cosign, keys / "cosign.pub", f"{repo}@{digest}")
        assert out.returncode == 0, out.stderr
        subjects = [s["digest"]["sha256"] for s in statement(out.stdout)["subject"]]
        assert subjects == [image.split(":")[1], index.split(":")[1]]
    assert verify(cosign, keys / "cosign.pub", f"{repo}:v1").returncode == 0  # the tag resolves to the index
