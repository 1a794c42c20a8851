"""Credentials precedence and the pod's credential volume (pure)."""

from __future__ import annotations

import base64
import json

import pytest

from controller.logic import credentials as c
from controller.logic.credentials import SecretInfo
from controller.logic.params import validate_params
from controller.logic.pod import Facts, PvcInfo, build_pod
from controller.model.params import PushParams
from controller.settings import Settings
from tests.unit.controller.helpers import run


def _b64(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _secret(name: str, typ: str, data: dict, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": name, "annotations": annotations or {}}, "type": typ, "data": data}


@pytest.mark.parametrize(
    ("obj", "origin", "want"),
    [
        (
            _secret(
                "j", c.DOCKERCONFIGJSON, {".dockerconfigjson": _b64({"auths": {"https://quay.io/v1/": {}}})}
            ),
            "registry-secret",
            SecretInfo("j", c.DOCKERCONFIGJSON, "registry-secret", ("quay.io",)),
        ),
        # .dockercfg has no "auths" wrapper (OpenShift's per-ServiceAccount Secrets)
        (
            _secret(
                "cfg",
                c.DOCKERCFG,
                {".dockercfg": _b64({"image-registry.openshift-image-registry.svc:5000": {}})},
            ),
            "serviceaccount",
            SecretInfo(
                "cfg", c.DOCKERCFG, "serviceaccount", ("image-registry.openshift-image-registry.svc:5000",)
            ),
        ),
        # basic-auth names its host in a tekton.dev/docker-* annotation, as Tekton's creds-init reads it
        (
            _secret(
                "b",
                c.BASIC_AUTH,
                {"username": "dQ==", "password": "cA=="},
                {"tekton.dev/docker-0": "https://ghcr.io"},
            ),
            "serviceaccount",
            SecretInfo("b", c.BASIC_AUTH, "serviceaccount", ("ghcr.io",)),
        ),
        # without the annotation a basic-auth Secret is not for registries
        (_secret("b", c.BASIC_AUTH, {"username": "dQ==", "password": "cA=="}), "serviceaccount", None),
        # basic-auth only counts on the ServiceAccount's secrets list
        (
            _secret(
                "b", c.BASIC_AUTH, {"username": "dQ==", "password": "cA=="}, {"tekton.dev/docker-0": "q.io"}
            ),
            "imagePullSecrets",
            None,
        ),
        (_secret("o", "Opaque", {"x": "eA=="}), "serviceaccount", None),
        (_secret("j", c.DOCKERCONFIGJSON, {}), "registry-secret", None),
        (
            _secret("j", c.DOCKERCONFIGJSON, {".dockerconfigjson": "not base64!"}),
            "registry-secret",
            SecretInfo("j", c.DOCKERCONFIGJSON, "registry-secret", ()),
        ),
    ],
)
def test_secret_info(obj: dict, origin: c.Origin, want: SecretInfo | None) -> None:
    assert c.secret_info(obj, origin) == want


EXPLICIT = SecretInfo("explicit", c.DOCKERCONFIGJSON, "registry-secret", ("quay.io",))
SA_BASIC = SecretInfo("sa-basic", c.BASIC_AUTH, "serviceaccount", ("quay.io", "ghcr.io"))
SA_CFG = SecretInfo("sa-cfg", c.DOCKERCFG, "serviceaccount", ("internal:5000",))
PULL = SecretInfo("pull", c.DOCKERCONFIGJSON, "imagePullSecrets", ("ghcr.io", "other.io"))


@pytest.mark.parametrize(
    ("sources", "needed", "chosen"),
    [
        # explicit first; the SA's basic-auth adds ghcr.io; the pull secret adds nothing new
        ([EXPLICIT, SA_BASIC, SA_CFG, PULL], ["quay.io", "ghcr.io"], ["explicit", "sa-basic"]),
        # the explicit Secret is mounted even when it names none of the hosts (the user asked for it)
        ([EXPLICIT, PULL], ["ghcr.io"], ["explicit", "pull"]),
        # only what the pod needs: nothing for hosts it does not talk to
        ([SA_BASIC, SA_CFG, PULL], ["internal:5000"], ["sa-cfg"]),
        ([SA_BASIC, PULL], ["nowhere.io"], []),
        # a Secret listed twice (secrets and imagePullSecrets) is mounted once
        ([PULL, PULL], ["other.io"], ["pull"]),
    ],
)
def test_select_precedence(sources: list[SecretInfo], needed: list[str], chosen: list[str]) -> None:
    assert [s.name for s in c.select(sources, needed)] == chosen


@pytest.mark.parametrize(
    ("mode", "hosts", "want"),
    [
        (
            "auto",
            ["image-registry.openshift-image-registry.svc:5000", "quay.io"],
            ["image-registry.openshift-image-registry.svc:5000"],
        ),
        ("auto", ["quay.io"], []),
        ("serviceaccount", ["quay.io", "r:5000"], ["quay.io", "r:5000"]),
        ("secret", ["image-registry.openshift-image-registry.svc:5000"], []),
    ],
)
def test_wants_token(mode: str, hosts: list[str], want: list[str]) -> None:
    assert c.wants_token(mode, hosts) == want


def test_mounts_projected_read_only_with_token() -> None:
    m = c.mounts([EXPLICIT, SA_BASIC], ["r:5000"])
    assert m.mount == {"name": "registry-auth", "mountPath": c.AUTH_DIR, "readOnly": True}
    assert m.volume is not None
    sources = m.volume["projected"]["sources"]
    assert sources[0] == {
        "secret": {
            "name": "explicit",
            "items": [{"key": ".dockerconfigjson", "path": "00-explicit.dockerconfigjson"}],
        }
    }
    assert [i["path"] for i in sources[1]["secret"]["items"]] == [
        "01-sa-basic.basic/quay.io/username",
        "01-sa-basic.basic/quay.io/password",
        "01-sa-basic.basic/ghcr.io/username",
        "01-sa-basic.basic/ghcr.io/password",
    ]
    assert sources[2] == {"serviceAccountToken": {"path": c.TOKEN_PATH, "expirationSeconds": c.TOKEN_SECONDS}}
    # flags name files, never a credential
    assert m.args == ["--auth-dir", c.AUTH_DIR, "--registry-token", f"r:5000={c.AUTH_DIR}/{c.TOKEN_PATH}"]


def test_no_credentials_no_volume() -> None:
    assert c.mounts([], []) == c.CredentialMounts(None, None, [])


# ---- the pod the controller plans (controller/logic/pod.py's credentials hook)


OPENSHIFT = "image-registry.openshift-image-registry.svc:5000"
PVCS = {"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",), None)}


def _pod(params: dict, found: tuple[SecretInfo, ...] | None) -> dict:
    p = validate_params({"source": "dir:///workspace/model", **params})
    assert isinstance(p, PushParams), p
    facts = Facts(pvcs=PVCS, credentials=found, secret=".dockerconfigjson")
    return build_pod(run(), p, 1, Settings(leader_election=False), facts, None).manifest


def test_openshift_registry_gets_a_projected_token_and_no_automount() -> None:
    m = _pod({"image": f"{OPENSHIFT}/team/model:v1"}, ())
    spec, container = m["spec"], m["spec"]["containers"][0]
    assert spec["automountServiceAccountToken"] is False
    vol = next(v for v in spec["volumes"] if v["name"] == "registry-auth")
    assert vol["projected"]["sources"] == [
        {"serviceAccountToken": {"path": c.TOKEN_PATH, "expirationSeconds": c.TOKEN_SECONDS}}
    ]
    args = container["args"]
    assert args[args.index("--registry-token") + 1] == f"{OPENSHIFT}=/etc/modelpush/auth/serviceaccount/token"
    assert all("token" not in str(e.get("value", "")) for e in container.get("env", []))


def test_secret_auth_has_no_token_and_sa_secrets_only_for_needed_hosts() -> None:
    found = (SA_BASIC, SA_CFG, PULL)
    m = _pod({"image": "quay.io/acme/m:v1", "registry-auth": "secret"}, found)
    vol = next(v for v in m["spec"]["volumes"] if v["name"] == "registry-auth")
    assert [s["secret"]["name"] for s in vol["projected"]["sources"]] == ["sa-basic"]
    mount = next(v for v in m["spec"]["containers"][0]["volumeMounts"] if v["name"] == "registry-auth")
    assert mount["readOnly"] is True


def test_upload_param_and_settings_reach_the_pod() -> None:
    m = _pod({"image": "ghcr.io/acme/m:v1", "upload": "q.io=monolithic"}, ())
    args = m["spec"]["containers"][0]["args"]
    ups = [args[i + 1] for i, a in enumerate(args) if a == "--upload"]
    assert ups == ["ghcr.io=chunked:4Mi", "q.io=monolithic"]  # the setting for the host used, then the param


@pytest.mark.parametrize("value", ["chunked", "fast", "q.io=chunked:0", "=streamed"])
def test_upload_param_invalid(value: str) -> None:
    got = validate_params({"source": "dir:///workspace/model", "image": "q.io/a/b:1", "upload": value})
    assert not isinstance(got, PushParams)
