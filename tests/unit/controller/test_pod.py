from typing import Any

import pytest

from controller.logic.naming import pod_name
from controller.logic.params import validate_params
from controller.logic.pod import Facts, PlanError, PvcInfo, build_pod
from controller.logic.sizing import ephemeral_storage
from controller.model.params import PushParams
from controller.settings import Settings
from tests.unit.controller.helpers import run

GI, MI = 1024**3, 1024**2
SETTINGS = Settings(
    native_ephemeral_storage="256Mi",
    compat_storage_ratio=2.0,
    compat_storage_floor="1Gi",
    compat_storage_ceiling="100Gi",
    insecure_registries=["127.0.0.1:5000"],
    leader_election=False,
)
FACTS = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",), None)})


def params(**extra: Any) -> PushParams:
    p = validate_params({"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1", **extra})
    assert isinstance(p, PushParams), p
    return p


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("name", "attempt", "expected"),
    [("push-1", 1, "push-1-push-1"), ("a" * 50, 2, "a" * 50 + "-push-2")],
)
def test_pod_name_short(name: str, attempt: int, expected: str) -> None:
    assert pod_name(name, attempt) == expected


def test_pod_name_long_is_capped_unique_and_stable() -> None:
    a, b = "x" * 70 + "a", "x" * 70 + "b"
    assert len(pod_name(a, 1)) <= 63
    assert pod_name(a, 1) != pod_name(b, 1)
    assert pod_name(a, 1) == pod_name(a, 1)
    assert pod_name(a, 12).endswith("-push-12")


@pytest.mark.parametrize(
    ("extra", "override", "expected"),
    [
        ({}, None, 256 * MI),  # native build: small fixed
        ({"source": "docker://q.io/a/b:1"}, None, 256 * MI),  # native copy
        ({"ephemeral-storage": "3Gi"}, None, 3 * GI),  # explicit wins
        ({"mode": "buildah"}, None, 1 * GI),  # unknown size: floor
        ({"mode": "buildah", "model-size": "10Gi"}, None, 20 * GI),  # ratio
        ({"mode": "buildah", "model-size": "100Mi"}, None, 1 * GI),  # floor
        ({"mode": "buildah", "model-size": "80Gi"}, None, 100 * GI),  # ceiling
        ({"mode": "buildah", "model-size": "80Gi", "ephemeral-storage": "500Gi"}, None, 500 * GI),
        ({"mode": "skopeo", "source": "docker://q.io/a/b:1", "model-size": "4Gi"}, None, 8 * GI),
        ({"mode": "buildah"}, 96 * MI, 96 * MI),  # eviction retry size wins
    ],
)
def test_sizing(extra: dict[str, Any], override: int | None, expected: int) -> None:
    p = params(**extra)
    assert ephemeral_storage(p, p.resolved_mode, SETTINGS, override) == expected


def test_build_pod_native() -> None:
    r = run(
        {
            "source": "dir:///workspace/model/sub",
            "image": "127.0.0.1:5000/acme/m:v1",
            "registry-secret": "creds",
        }
    )
    plan = build_pod(
        r,
        params(source="dir:///workspace/model/sub", **{"registry-secret": "creds"}),
        1,
        SETTINGS,
        FACTS,
        600.4,
    )
    m = plan.manifest
    assert plan.name == "push-1-push-1" and m["metadata"]["name"] == plan.name
    assert m["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "model-image-push",
        "app.kubernetes.io/name": "model-image-push",
        "modelpush.dev/customrun": "push-1",
        "modelpush.dev/attempt": "1",
        "modelpush.dev/mode": "build",
    }
    owner = m["metadata"]["ownerReferences"][0]
    assert owner == {
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "name": "push-1",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    spec, c = m["spec"], container(m)
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 601
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["name"] == "push" and c["command"] == ["python3", "-m", "controller.push"]
    assert c["args"] == [
        "build",
        "--context",
        "/workspace/model/sub",
        "--image",
        "127.0.0.1:5000/acme/m:v1",
        "--insecure-registry",
        "127.0.0.1:5000",
        "--auth-dir",
        "/etc/modelpush/auth",
        "--result-file",
        "/dev/termination-log",
    ]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"]["ephemeral-storage"] == "256Mi"
    assert c["resources"]["limits"]["ephemeral-storage"] == "256Mi"
    mounts = {v["name"]: v for v in c["volumeMounts"]}
    assert mounts["workspace"]["mountPath"] == "/workspace/model"
    assert mounts["workspace"]["readOnly"] is True  # native build only reads
    assert mounts["registry-auth"] == {
        "name": "registry-auth",
        "mountPath": "/etc/modelpush/auth",
        "readOnly": True,
    }
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["workspace"]["persistentVolumeClaim"] == {"claimName": "model-pvc"}
    # the explicit Secret only (no ServiceAccount credentials were read), through the projected volume
    assert vols["registry-auth"]["projected"]["sources"] == [
        {
            "secret": {
                "name": "creds",
                "items": [{"key": ".dockerconfigjson", "path": "00-creds.dockerconfigjson"}],
            }
        }
    ]
    assert "affinity" not in spec


def test_build_pod_buildah_storage_on_pvc_and_sized() -> None:
    p = params(mode="buildah", **{"model-size": "2Gi", "containerfile": "Containerfile"})
    plan = build_pod(run(), p, 2, SETTINGS, FACTS, None)
    c = container(plan.manifest)
    assert plan.name == "push-1-push-2"
    assert c["args"][:8] == [
        "buildah",
        "--context",
        "/workspace/model",
        "--image",
        "127.0.0.1:5000/acme/m:v1",
        "--storage",
        "/workspace/model/.modelpush/push-1-push-2",
        "--containerfile",
    ]
    assert c["args"][8] == "/workspace/model/Containerfile"
    assert c["resources"]["limits"]["ephemeral-storage"] == "4Gi"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True  # buildah's storage is on the PVC
    assert c["securityContext"]["privileged"] is False
    assert "activeDeadlineSeconds" not in plan.manifest["spec"]


def test_build_pod_buildah_privileged_only_when_allowed() -> None:
    s = SETTINGS.model_copy(update={"allow_privileged_buildah": True})
    plan = build_pod(run(), params(mode="buildah"), 1, s, FACTS, None)
    assert container(plan.manifest)["securityContext"]["privileged"] is True
    # still the image's non-root user: buildah goes rootless through newuidmap inside the container
    assert plan.manifest["spec"]["securityContext"]["runAsNonRoot"] is True
    pinned = s.model_copy(update={"run_as_user": 65532})
    sc = build_pod(run(), params(mode="buildah"), 1, pinned, FACTS, None).manifest["spec"]["securityContext"]
    assert (sc["runAsNonRoot"], sc["runAsUser"]) == (True, 65532)


def test_build_pod_skopeo_ephemeral_storage_uses_emptydir() -> None:
    p = params(mode="skopeo", source="docker://127.0.0.1:5000/a/b:1", storage="ephemeral")
    plan = build_pod(run(workspaces=[]), p, 1, SETTINGS, Facts(), None)
    c = container(plan.manifest)
    assert c["args"][:5] == [
        "skopeo",
        "127.0.0.1:5000/a/b:1",
        "127.0.0.1:5000/acme/m:v1",
        "--tmpdir",
        "/scratch/push-1-push-1",
    ]
    assert {"name": "scratch", "emptyDir": {}} in plan.manifest["spec"]["volumes"]


@pytest.mark.parametrize(
    ("extra", "facts", "ca_file"),
    [
        ({}, FACTS, "/etc/modelpush/ca/ca-bundle.crt"),  # not checked: OpenShift's key
        ({}, Facts(pvcs=FACTS.pvcs, ca_bundle="ca.crt"), "/etc/modelpush/ca/ca.crt"),
        (
            {"mode": "buildah"},
            Facts(pvcs=FACTS.pvcs, ca_bundle="ca-bundle.crt"),
            "/etc/modelpush/ca/ca-bundle.crt",
        ),
        ({"source": "docker://q.io/a/b:1"}, Facts(ca_bundle="ca.crt"), "/etc/modelpush/ca/ca.crt"),
        ({"source": "docker://q.io/a/b:1", "mode": "skopeo"}, Facts(), "/etc/modelpush/ca/ca-bundle.crt"),
    ],
)
def test_ca_bundle_mounts_configmap_and_passes_ca_file(
    extra: dict[str, Any], facts: Facts, ca_file: str
) -> None:
    p = params(**{"ca-bundle": "trusted-ca", **extra})
    ws = None if "source" not in extra else []
    plan = build_pod(run(workspaces=ws), p, 1, SETTINGS, facts, None)
    c = container(plan.manifest)
    assert c["args"][c["args"].index("--ca-file") + 1] == ca_file
    assert c["args"][-2:] == ["--result-file", "/dev/termination-log"]
    assert {"name": "ca-bundle", "mountPath": "/etc/modelpush/ca", "readOnly": True} in c["volumeMounts"]
    assert {"name": "ca-bundle", "configMap": {"name": "trusted-ca"}} in plan.manifest["spec"]["volumes"]


def test_no_ca_bundle_no_ca_file() -> None:
    plan = build_pod(run(), params(), 1, SETTINGS, Facts(pvcs=FACTS.pvcs, ca_bundle="ca.crt"), None)
    c = container(plan.manifest)
    assert "--ca-file" not in c["args"]
    assert all(v["name"] != "ca-bundle" for v in plan.manifest["spec"]["volumes"])


def test_build_pod_copy_tls_verify_false_adds_hosts() -> None:
    p = params(source="docker://reg.example:5000/a/b:1", **{"tls-verify": "false"})
    c = container(build_pod(run(workspaces=[]), p, 1, SETTINGS, Facts(), None).manifest)
    assert c["args"][:3] == ["copy", "reg.example:5000/a/b:1", "127.0.0.1:5000/acme/m:v1"]
    hosts = [c["args"][i + 1] for i, a in enumerate(c["args"]) if a == "--insecure-registry"]
    assert hosts == ["127.0.0.1:5000", "reg.example:5000"]


def test_node_affinity_for_attached_rwo_pvc_and_scheduling_params() -> None:
    facts = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",), "local-node-1")})
    p = params(**{"node-selector": '{"disk": "big"}', "tolerations": '[{"key": "k", "operator": "Exists"}]'})
    spec = build_pod(run(), p, 1, SETTINGS, facts, None).manifest["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["local-node-1"]}]}
    ]
    assert spec["nodeSelector"] == {"disk": "big"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]


def test_rwx_pvc_gets_no_affinity() -> None:
    facts = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteMany",), "local-node-1")})
    assert "affinity" not in build_pod(run(), params(), 1, SETTINGS, facts, None).manifest["spec"]


@pytest.mark.parametrize(
    ("workspaces", "facts", "reason", "needle"),
    [
        ([], FACTS, "MissingWorkspace", "binds none"),
        (
            [{"name": "other", "persistentVolumeClaim": {"claimName": "model-pvc"}}],
            FACTS,
            "MissingWorkspace",
            "'model'",
        ),
        ([{"name": "model", "emptyDir": {}}], FACTS, "MissingWorkspace", "persistentVolumeClaim"),
        (None, Facts(pvcs={"model-pvc": None}), "MissingWorkspace", "'model-pvc'"),
    ],
)
def test_plan_errors(workspaces: Any, facts: Facts, reason: str, needle: str) -> None:
    with pytest.raises(PlanError) as err:
        build_pod(run(workspaces=workspaces), params(), 1, SETTINGS, facts, None)
    assert err.value.reason == reason and needle in err.value.message


def test_source_outside_workspace_root() -> None:
    with pytest.raises(PlanError) as err:
        build_pod(run(), params(source="dir:///data/model"), 1, SETTINGS, FACTS, None)
    assert err.value.reason == "InvalidParams"
