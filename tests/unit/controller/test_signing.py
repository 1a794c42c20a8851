"""Signing decisions (pure): which runs sign, what the pod gets, SigningFailed semantics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.logic.decision import decide
from controller.logic.pod import Facts, PvcInfo
from controller.logic.signing import (
    copy_secret,
    per_run_secret,
    run_asks_to_sign,
    signing_secret_of,
)
from controller.settings import Settings
from tests.unit.controller.helpers import NOW, pod, run, terminated

SETTINGS = Settings(leader_election=False, lease_namespace="mip-system")
FACTS = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",))})
BASE = {"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1"}
DIGEST = "sha256:" + "a" * 64


def _pod_for(params: dict[str, Any], settings: Settings = SETTINGS, **kw: Any) -> dict[str, Any]:
    d = decide(run(params, **kw), None, NOW, settings, FACTS)
    assert d.create_pod is not None
    return d.create_pod


@pytest.mark.parametrize(
    ("sign", "sign_all", "signs"),
    [
        (None, False, False),
        ("true", False, True),
        ("false", False, False),
        (None, True, True),
        ("false", True, False),
    ],
)
def test_param_and_setting_decide_whether_to_sign(sign: str | None, sign_all: bool, signs: bool) -> None:
    params = {**BASE, **({"sign": sign} if sign is not None else {})}
    settings = SETTINGS.model_copy(update={"sign_all": sign_all})
    manifest = _pod_for(params, settings)
    assert (signing_secret_of(manifest) is not None) is signs
    assert ("--sign-key" in manifest["spec"]["containers"][0]["args"]) is signs
    assert run_asks_to_sign(run(params), settings) is signs


def test_signing_pod_mounts_the_per_run_copy_and_passes_names_only() -> None:
    labels = {"tekton.dev/pipelineRun": "pr-1", "tekton.dev/pipelineTask": "push"}
    r = run({**BASE, "sign": "true"})
    r.metadata.labels.update(labels)
    d = decide(r, None, NOW, SETTINGS, FACTS)
    assert d.create_pod is not None
    spec = d.create_pod["spec"]
    vol = next(v for v in spec["volumes"] if v["name"] == "signing-key")
    assert vol["secret"]["secretName"] == "push-1-signing" and vol["secret"]["optional"] is True
    assert [i["key"] for i in vol["secret"]["items"]] == ["cosign.key", "cosign.password"]
    args = spec["containers"][0]["args"]
    assert args[args.index("--sign-key") + 1] == "/etc/modelpush/signing/cosign.key"
    assert args[args.index("--sign-key-source") + 1] == "mip-system/signing-secrets"
    ctx = json.loads(args[args.index("--provenance-context") + 1])
    assert ctx["invocation"] == {
        "namespace": "ns1",
        "name": "push-1",
        "uid": "uid-1",
        "pipelineRun": "pr-1",
        "pipelineTask": "push",
    }
    assert ctx["params"]["sign"] == "true" and ctx["builder"]["id"] == SETTINGS.work_image
    assert not any("SIGSTORE" in a for a in args) and "env" not in json.dumps(vol)


def test_invalid_sign_param_is_invalid_params() -> None:
    d = decide(run({**BASE, "sign": "maybe"}), None, NOW, SETTINGS, FACTS)
    assert d.status is not None and d.status["conditions"][0]["reason"] == "InvalidParams"
    assert "'sign'" in d.status["conditions"][0]["message"]


def test_copy_secret_takes_only_what_the_pod_needs_and_is_owned_by_the_run() -> None:
    source = {"data": {"cosign.key": "a2V5", "cosign.password": "cHc=", "cosign.pub": "cHVi", "x": "eA=="}}
    s = copy_secret(run(BASE), source, SETTINGS)
    assert s is not None
    assert set(s["data"]) == {"cosign.key", "cosign.password"}
    assert s["metadata"]["namespace"] == "ns1" and s["metadata"]["name"] == "push-1-signing"
    assert s["metadata"]["ownerReferences"][0]["uid"] == "uid-1" and s["immutable"] is True
    assert copy_secret(run(BASE), {"data": {"cosign.pub": "cHVi"}}, SETTINGS) is None


def test_per_run_secret_name_fits() -> None:
    assert len(per_run_secret("r" * 253)) <= 253
    assert per_run_secret("r" * 253) != per_run_secret("r" * 252 + "s")


def _finished(result: dict[str, Any], settings: Settings = SETTINGS):
    status = {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "m"}],
        "startTime": "2026-01-02T03:04:00Z",
        "extraFields": {"attempt": 1, "mode": "build", "podName": "push-1-push-1"},
    }
    message = json.dumps(
        {"image": "i", "digest": DIGEST, "url": f"r/m@{DIGEST}", "size": 1, "layers": 1, **result}
    )
    return decide(
        run({**BASE, "sign": "true"}, status=status),
        pod("Succeeded", **terminated(0, message)),
        NOW,
        settings,
    )


def test_signed_push_reports_refs() -> None:
    d = _finished({"signature_ref": "r/m@sha256:1", "attestation_ref": "r/m@sha256:2"})
    assert d.status is not None
    assert (d.status["conditions"][0]["status"], d.status["conditions"][0]["reason"]) == ("True", "Succeeded")
    results = {r["name"]: r["value"] for r in d.status["results"]}
    assert results["SIGNATURE_REF"] == "r/m@sha256:1" and results["ATTESTATION_REF"] == "r/m@sha256:2"
    assert results["IMAGE_DIGEST"] == DIGEST


@pytest.mark.parametrize(("require", "status"), [(True, "False"), (False, "True")])
def test_signing_failure_keeps_the_digest_and_says_signing_failed(require: bool, status: str) -> None:
    error = "key cosign.key in Secret mip-system/signing-secrets: wrong password"
    d = _finished({"signing_error": error}, SETTINGS.model_copy(update={"require_signature": require}))
    assert d.status is not None
    c = d.status["conditions"][0]
    assert (c["status"], c["reason"]) == (status, "SigningFailed")
    assert error in c["message"]
    results = {r["name"]: r["value"] for r in d.status["results"]}
    assert results["IMAGE_DIGEST"] == DIGEST and "SIGNATURE_REF" not in results
    assert d.outcome is not None and d.outcome.reason == "SigningFailed"
    assert d.create_pod is None  # never retried: the image is there, only the key is wrong
