"""Plan -> Pod manifest for one attempt of a run (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from controller.logic import credentials, naming
from controller.logic.signing import add_signing, signing_wanted
from controller.logic.sizing import resources
from controller.model.customrun import CustomRun
from controller.model.params import PushParams, ref_host
from controller.model.quantity import format_quantity
from controller.model.reasons import Reason
from controller.settings import Settings

WORKSPACE_ROOT = "/workspace"
TERMINATION_PATH = "/dev/termination-log"
AUTH_DIR = credentials.AUTH_DIR
AUTH_KEY = ".dockerconfigjson"
AUTH_KEYS = (AUTH_KEY, ".dockercfg")  # the keys of the two docker Secret types registry-secret may be
CA_DIR = "/etc/modelpush/ca"
# OpenShift's trusted-CA injection writes ca-bundle.crt; ca.crt is the other common name. First one wins.
CA_KEYS = ("ca-bundle.crt", "ca.crt")
SCRATCH_DIR = "/scratch"
TMP_DIR = "/tmp"
CONTAINER = "push"
RWO_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
# Tekton's affinity assistant: the CustomRun annotation and the assistant pod's labels (pkg/workspace)
AA_ANNOTATION = "pipeline.tekton.dev/affinity-assistant"
AA_LABEL_INSTANCE = "app.kubernetes.io/instance"
AA_LABEL_COMPONENT = "app.kubernetes.io/component"
AA_COMPONENT = "affinity-assistant"


@dataclass(frozen=True)
class PvcInfo:
    name: str
    access_modes: tuple[str, ...] = ()
    node: str | None = None  # the node the volume is attached to, when known


@dataclass(frozen=True)
class Facts:
    """What the applier read from the cluster before planning a pod (absent keys were not checked)."""

    pvcs: Mapping[str, PvcInfo | None] = field(default_factory=dict)  # claim -> info; None: not found
    secret: str | None = None  # the AUTH_KEYS key found, "missing", "nokey"; None: not checked
    # registry credentials (registries issue): the explicit Secret, then the ServiceAccount's, in precedence
    # order; None: not read (the explicit registry-secret alone is used)
    credentials: tuple[credentials.SecretInfo, ...] | None = None
    ca_bundle: str | None = None  # the CA_KEYS key found, "missing" or "nokey"; None: not checked
    defaults: Mapping[str, Any] | None = None  # params from the referenced ModelImagePush object
    defaults_missing: bool = False
    pod_rejected: str | None = None  # the API server's message when admission refused the pod
    create_forbidden: str | None = None  # its message when RBAC refused the controller the pod create


class PlanError(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Mount:
    volume: str
    claim: str
    mount_path: str
    sub_path: str | None
    read_only: bool
    pvc: PvcInfo


@dataclass(frozen=True)
class PodPlan:
    name: str
    attempt: int
    mode: str
    ephemeral_storage: int
    manifest: dict[str, Any]


def workspace_claims(run: CustomRun) -> list[str]:
    return [w.persistent_volume_claim.claim_name for w in run.spec.workspaces if w.persistent_volume_claim]


def _mount_for(run: CustomRun, ws_name: str, facts: Facts, volume: str) -> Mount:
    binding = next((w for w in run.spec.workspaces if w.name == ws_name), None)
    if binding is None:
        bound = ", ".join(w.name for w in run.spec.workspaces) or "none"
        raise PlanError(
            Reason.MISSING_WORKSPACE,
            f"the source needs workspace {ws_name!r} but the CustomRun binds {bound}; bind a PVC-backed "
            f"workspace named {ws_name!r}",
        )
    if binding.persistent_volume_claim is None:
        raise PlanError(
            Reason.MISSING_WORKSPACE,
            f"workspace {ws_name!r} is not backed by a persistentVolumeClaim; only PVC workspaces are "
            "supported",
        )
    claim = binding.persistent_volume_claim.claim_name
    info = facts.pvcs.get(claim)
    if info is None:
        raise PlanError(
            Reason.MISSING_WORKSPACE,
            f"PersistentVolumeClaim {claim!r} (workspace {ws_name!r}) not found in namespace "
            f"{run.metadata.namespace!r}",
        )
    return Mount(
        volume=volume,
        claim=claim,
        mount_path=f"{WORKSPACE_ROOT}/{ws_name}",
        sub_path=binding.sub_path,
        read_only=binding.persistent_volume_claim.read_only,
        pvc=info,
    )


def source_workspace(params: PushParams) -> str | None:
    """dir:///workspace/<name>/... -> <name>."""
    path = params.source_path
    if path is None:
        return None
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != WORKSPACE_ROOT.strip("/"):
        raise PlanError(
            Reason.INVALID_PARAMS,
            f"param 'source' has value {params.source!r}: a dir:// path must be inside a workspace, "
            f"dir://{WORKSPACE_ROOT}/<workspace name>[/<path>]",
        )
    return parts[1]


def plan_mounts(run: CustomRun, params: PushParams, mode: str, facts: Facts) -> list[Mount]:
    mounts: list[Mount] = []
    src_ws = source_workspace(params)
    if src_ws is not None:
        mount = _mount_for(run, src_ws, facts, "workspace")
        if mode == "build":  # the native builder only reads the model files
            mount = replace(mount, read_only=True)
        mounts.append(mount)
    elif mode == "skopeo" and params.storage != "ephemeral" and run.spec.workspaces:
        # skopeo's temp dir goes on the first bound workspace, when there is one
        mounts.append(_mount_for(run, run.spec.workspaces[0].name, facts, "workspace"))
    return mounts


def _insecure(params: PushParams, settings: Settings) -> list[str]:
    hosts = list(settings.insecure_registries) + list(params.insecure_registries)
    if not params.tls_verify:
        hosts.append(ref_host(params.image))
        if params.source_ref:
            hosts.append(ref_host(params.source_ref))
    return list(dict.fromkeys(hosts))


# ---- registries issue: credentials hook (controller/logic/credentials.py holds the rules)
def registry_hosts(params: PushParams) -> list[str]:
    """The registries the work pod talks to: destination, copy source, base image."""
    refs = [params.image, params.source_ref, params.base]
    return list(dict.fromkeys(ref_host(r) for r in refs if r))


def credential_mounts(params: PushParams, facts: Facts) -> credentials.CredentialMounts:
    hosts = registry_hosts(params)
    found = facts.credentials
    if found is None and params.registry_secret:
        key_type = {".dockercfg": credentials.DOCKERCFG}.get(facts.secret or "", credentials.DOCKERCONFIGJSON)
        found = (credentials.SecretInfo(params.registry_secret, key_type, "registry-secret", ()),)
    chosen = credentials.select(found or (), hosts)
    return credentials.mounts(chosen, credentials.wants_token(params.registry_auth, hosts))


# ---- end of the credentials hook


def ca_key(facts: Facts) -> str:
    """The ConfigMap key to pass as --ca-file: the one the preflight found, else OpenShift's."""
    return facts.ca_bundle if facts.ca_bundle in CA_KEYS else CA_KEYS[0]


def _args(
    params: PushParams, mode: str, pod: str, mounts: list[Mount], settings: Settings, facts: Facts
) -> list[str]:
    storage_root = None
    if mode in ("buildah", "skopeo"):
        if mounts and params.storage != "ephemeral":
            storage_root = f"{mounts[0].mount_path}/.modelpush/{pod}"
        else:
            storage_root = f"{SCRATCH_DIR}/{pod}"
    if mode == "build":
        args = ["build", "--context", params.source_path or "", "--image", params.image]
        if params.base:
            args += ["--base", params.base]
        args += _build_meta_args(params)
    elif mode == "copy":
        args = ["copy", params.source_ref or "", params.image]
    elif mode == "buildah":
        args = ["buildah", "--context", params.source_path or "", "--image", params.image]
        args += ["--storage", storage_root or ""]
        if params.base and params.base != "none":  # none: the generated Containerfile's FROM scratch
            args += ["--base", params.base]
        if params.containerfile:
            cf = params.containerfile
            args += ["--containerfile", cf if cf.startswith("/") else f"{params.source_path}/{cf}"]
    else:
        args = ["skopeo", params.source_ref or "", params.image, "--tmpdir", storage_root or ""]
    for host in _insecure(params, settings):
        args += ["--insecure-registry", host]
    args += credential_mounts(params, facts).args
    hosts = registry_hosts(params)
    defaults = [i for i in settings.upload_strategies if "=" not in i or i.rsplit("=", 1)[0] in hosts]
    for item in [*defaults, *params.upload]:
        args += ["--upload", item]
    if params.ca_bundle:  # all modes: the compat wrappers turn it into buildah/skopeo --cert-dir
        args += ["--ca-file", f"{CA_DIR}/{ca_key(facts)}"]
    args += ["--result-file", TERMINATION_PATH]
    return args


def _build_meta_args(params: PushParams) -> list[str]:
    """issue 12 (kserve-modelpack): --format and the metadata flags of the native builder."""
    args = ["--format", params.format] if params.format != "modelcar" else []
    flags = {
        "--model-name": params.model_name,
        "--model-version": params.model_version,
        "--model-family": params.model_family,
        "--source-url": params.source_url,
        "--revision": params.source_revision,
    }
    for flag, value in flags.items():
        if value:
            args += [flag, value]
    return args


def _affinity(mounts: list[Mount], assistant: str | None) -> dict[str, Any] | None:
    """Tekton's affinity assistant (coschedule: workspaces) annotates the CustomRun with its name: take the
    same pod affinity to the assistant pod that Tekton gives TaskRun pods. Without it, a ReadWriteOnce
    volume already attached to a node pins the pod there."""
    out: dict[str, Any] = {}
    if assistant:
        term = {
            "labelSelector": {
                "matchLabels": {AA_LABEL_INSTANCE: assistant, AA_LABEL_COMPONENT: AA_COMPONENT}
            },
            "topologyKey": "kubernetes.io/hostname",
        }
        out["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    nodes = sorted({m.pvc.node for m in mounts if m.pvc.node and set(m.pvc.access_modes) & set(RWO_MODES)})
    if nodes:
        node_term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": nodes}]}
        out["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [node_term]}
        }
    return out or None


def build_pod(
    run: CustomRun,
    params: PushParams,
    attempt: int,
    settings: Settings,
    facts: Facts,
    deadline_seconds: float | None,
    storage_override: int | None = None,
) -> PodPlan:
    mode = params.resolved_mode
    name = naming.pod_name(run.metadata.name, attempt)
    mounts = plan_mounts(run, params, mode, facts)
    res = resources(params, mode, settings, storage_override)
    storage = format_quantity(res.ephemeral_storage)
    privileged = mode == "buildah" and settings.allow_privileged_buildah

    volume_mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    for m in mounts:
        vm: dict[str, Any] = {"name": m.volume, "mountPath": m.mount_path, "readOnly": m.read_only}
        if m.sub_path:
            vm["subPath"] = m.sub_path
        volume_mounts.append(vm)
        volumes.append({"name": m.volume, "persistentVolumeClaim": {"claimName": m.claim}})
    if mode in ("buildah", "skopeo") and (not mounts or params.storage == "ephemeral"):
        volume_mounts.append({"name": "scratch", "mountPath": SCRATCH_DIR})
        volumes.append({"name": "scratch", "emptyDir": {}})
    creds = credential_mounts(params, facts)
    if creds.volume is not None and creds.mount is not None:
        volume_mounts.append(creds.mount)
        volumes.append(creds.volume)
    if params.ca_bundle:
        volume_mounts.append({"name": "ca-bundle", "mountPath": CA_DIR, "readOnly": True})
        volumes.append({"name": "ca-bundle", "configMap": {"name": params.ca_bundle}})

    # Every mode writes only to its volumes (/tmp, the PVC or /scratch), so the root filesystem is
    # read-only and the user is the image's non-root one. A privileged buildah pod stays non-root too:
    # buildah goes rootless through newuidmap and the image's /etc/subuid range.
    container_sc: dict[str, Any] = {
        "allowPrivilegeEscalation": privileged,
        "privileged": privileged,
        "readOnlyRootFilesystem": True,
    }
    if not privileged:
        container_sc["capabilities"] = {"drop": ["ALL"]}
    # No UID by default: the image's USER runs, and on OpenShift restricted-v2 assigns one from the
    # namespace's range (a fixed UID outside it is refused). RUN_AS_USER pins one explicitly.
    pod_sc: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True}
    if settings.run_as_user is not None:
        pod_sc.update(
            runAsUser=settings.run_as_user,
            runAsGroup=settings.run_as_user,
            fsGroup=settings.run_as_user,
        )

    labels = {
        naming.MANAGED_BY: naming.MANAGER,
        "app.kubernetes.io/name": "model-image-push",
        naming.LABEL_RUN: naming.label_value(run.metadata.name),
        naming.LABEL_ATTEMPT: str(attempt),
        naming.LABEL_MODE: mode,
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_sc,
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.work_image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": ["python3", "-m", "controller.push"],
                "args": _args(params, mode, name, mounts, settings, facts),
                "env": [{"name": "TMPDIR", "value": TMP_DIR}, {"name": "HOME", "value": TMP_DIR}],
                "resources": {
                    "requests": {
                        "cpu": res.cpu_request,
                        "memory": res.memory_request,
                        "ephemeral-storage": storage,
                    },
                    "limits": {
                        "cpu": res.cpu_limit,
                        "memory": res.memory_limit,
                        "ephemeral-storage": storage,
                    },
                },
                "volumeMounts": volume_mounts,
                "securityContext": container_sc,
                "terminationMessagePath": TERMINATION_PATH,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "volumes": volumes,
    }
    sa = settings.pod_service_account or run.spec.service_account_name
    if sa:
        spec["serviceAccountName"] = sa
    if deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(deadline_seconds))
    if params.node_selector:
        spec["nodeSelector"] = dict(params.node_selector)
    if params.tolerations:
        spec["tolerations"] = [dict(t) for t in params.tolerations]
    affinity = _affinity(mounts, run.metadata.annotations.get(AA_ANNOTATION, "").strip() or None)
    if affinity:
        spec["affinity"] = affinity
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": run.metadata.namespace,
            "labels": labels,
            "annotations": {"modelpush.dev/customrun": run.metadata.name},
            "ownerReferences": [
                naming.owner_reference(run.api_version, run.kind, run.metadata.name, run.metadata.uid)
            ],
        },
        "spec": spec,
    }
    if signing_wanted(params, settings):  # signing (issue 13): key Secret mount and --sign-* flags
        add_signing(manifest, run, settings)
    return PodPlan(name, attempt, mode, res.ephemeral_storage, manifest)
