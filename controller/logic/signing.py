"""Signing (pure): whether a run signs, what its work pod gets, and the per-run key Secret.

The key lives in one Secret in the controller's namespace (Tekton Chains' `signing-secrets` layout:
`cosign.key`, `cosign.password`, `cosign.pub`). A pod cannot mount a Secret from another namespace, so
the controller copies only `cosign.key` and `cosign.password` into a Secret `<run>-signing` in the run's
namespace, owned by the CustomRun (garbage-collected with it) and deleted when the run ends. The pod
mounts it read-only and `optional`, so a missing key is reported by the push program after the image
is pushed (reason `SigningFailed`), never as a stuck pod. Key material never enters args, env or
status: the args carry file paths and the source Secret's name only.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

from controller.logic import naming
from controller.model.customrun import CustomRun
from controller.model.params import PushParams
from controller.model.result import PushResult
from controller.settings import Settings

SIGNING_DIR = "/etc/modelpush/signing"
SIGNING_VOLUME = "signing-key"
KEY = "cosign.key"
PASSWORD = "cosign.password"
COPIED_KEYS = (KEY, PASSWORD)  # the pod never needs cosign.pub
TEKTON_LABELS = {
    "tekton.dev/pipelineRun": "pipelineRun",
    "tekton.dev/pipelineTask": "pipelineTask",
    "tekton.dev/pipeline": "pipeline",
    "tekton.dev/memberOf": "memberOf",
}
SIGNING_REASON = "SigningFailed"


def signing_wanted(params: PushParams, settings: Settings) -> bool:
    return settings.sign_all if params.sign is None else params.sign


def per_run_secret(run_name: str) -> str:
    """`<run>-signing`; Secret names allow 253 characters, a longer run name is cut and hashed."""
    name = f"{run_name}-signing"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:8]
    return f"{run_name[:235].rstrip('-.')}-{digest}-signing"


def source_secret(settings: Settings) -> tuple[str, str]:
    """(namespace, name) of the key Secret; the namespace defaults to the controller's own."""
    return settings.signing_secret_namespace or settings.lease_namespace, settings.signing_secret_name


def _version() -> str:
    try:
        return metadata.version("model-image-push")
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance_context(run: CustomRun, settings: Settings) -> dict[str, Any]:
    """What the work pod puts into the SLSA provenance beyond what it computes itself."""
    meta = run.metadata
    invocation: dict[str, Any] = {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid}
    for label, key in TEKTON_LABELS.items():
        if meta.labels.get(label):
            invocation[key] = meta.labels[label]
    context: dict[str, Any] = {
        "params": {p.name: p.value for p in run.spec.params},
        "builder": {"id": settings.work_image, "version": {"model-image-push": _version()}},
        "invocation": invocation,
    }
    if run.status.start_time:
        context["startedOn"] = run.status.start_time
    return context


def signing_args(run: CustomRun, settings: Settings) -> list[str]:
    ns, name = source_secret(settings)
    args = [
        "--sign-key",
        f"{SIGNING_DIR}/{KEY}",
        "--sign-password-file",
        f"{SIGNING_DIR}/{PASSWORD}",
        "--sign-key-source",
        f"{ns}/{name}",
        "--signature-storage",
        settings.signature_storage,
        "--provenance-context",
        json.dumps(provenance_context(run, settings), separators=(",", ":"), sort_keys=True),
    ]
    if settings.rekor_url:
        args += ["--rekor-url", settings.rekor_url]
    return args


def add_signing(manifest: dict[str, Any], run: CustomRun, settings: Settings) -> None:
    """Mount the per-run key Secret and pass the signing flags (mutates a fresh pod manifest)."""
    spec = manifest["spec"]
    container = spec["containers"][0]
    container["args"] = [*container["args"], *signing_args(run, settings)]
    container["volumeMounts"].append({"name": SIGNING_VOLUME, "mountPath": SIGNING_DIR, "readOnly": True})
    spec["volumes"].append(
        {
            "name": SIGNING_VOLUME,
            "secret": {
                "secretName": per_run_secret(run.metadata.name),
                "optional": True,
                # readable by the image's non-root user: the kubelet writes the files as root, and with
                # no fixed UID (OpenShift assigns one) there is no fsGroup to give them to; 0440 left
                # the key unreadable on a real kubelet. The pod's one container is the only reader.
                "defaultMode": 0o444,
                "items": [{"key": k, "path": k} for k in COPIED_KEYS],
            },
        }
    )


def signing_secret_of(pod: dict[str, Any]) -> str | None:
    """The per-run key Secret a planned pod mounts, if it signs."""
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if vol.get("name") == SIGNING_VOLUME:
            return (vol.get("secret") or {}).get("secretName")
    return None


def copy_secret(run: CustomRun, source: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    """The per-run Secret holding only the keys the pod needs; None when the source has none of them."""
    data = {k: v for k, v in (source.get("data") or {}).items() if k in COPIED_KEYS}
    if not data:
        return None
    ns, name = source_secret(settings)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {
            "name": per_run_secret(run.metadata.name),
            "namespace": run.metadata.namespace,
            "labels": {"app.kubernetes.io/managed-by": "model-image-push"},
            "annotations": {"modelpush.dev/copied-from": f"{ns}/{name}"},
            "ownerReferences": [
                naming.owner_reference(run.api_version, run.kind, run.metadata.name, run.metadata.uid)
            ],
        },
        "data": data,
    }


def signing_outcome(error: str | None, require_signature: bool) -> tuple[str, str] | None:
    """(condition status, reason) when signing failed after a good push, else None."""
    if not error:
        return None
    return ("False" if require_signature else "True"), SIGNING_REASON


def signing_results(result: PushResult) -> list[dict[str, str]]:
    """SIGNATURE_REF / ATTESTATION_REF (`repo@sha256:...` of the manifests holding them), when written."""
    out = []
    if result.signature_ref:
        out.append({"name": "SIGNATURE_REF", "value": result.signature_ref})
    if result.attestation_ref:
        out.append({"name": "ATTESTATION_REF", "value": result.attestation_ref})
    return out


def run_asks_to_sign(run: CustomRun, settings: Settings) -> bool:
    """From the raw params alone (no defaults object): enough to know whether to clean up after a run."""
    raw = next((str(p.value).strip().lower() for p in run.spec.params if p.name == "sign"), "")
    if raw in ("true", "1", "yes"):
        return True
    return settings.sign_all and raw not in ("false", "0", "no")
