"""Registry credentials, Tekton's way (pure): which Secrets a work pod gets, in which precedence.

Sources, first wins per registry host:
1. the explicit `registry-secret` (`kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`);
2. the run's ServiceAccount's `secrets`: `kubernetes.io/basic-auth` ones annotated `tekton.dev/docker-*`
   (the annotation's value names the registry, as Tekton's credential initialisation reads it), and
   docker config ones;
3. the ServiceAccount's `imagePullSecrets`.
Only Secrets that give a host the pod talks to are mounted, read-only, through one projected volume;
the push program reads the files in name order and keeps the first credentials per host.
`registry-auth: serviceaccount` adds a short-lived projected ServiceAccount token for a host
(OpenShift's internal registry), presented as Basic auth's password the way `oc registry login` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
BASIC_AUTH = "kubernetes.io/basic-auth"
DOCKER_KEYS = {DOCKERCONFIGJSON: ".dockerconfigjson", DOCKERCFG: ".dockercfg"}
TEKTON_DOCKER_ANNOTATION = "tekton.dev/docker-"
AUTH_DIR = "/etc/modelpush/auth"
TOKEN_PATH = "serviceaccount/token"
# The kubelet renews a projected token at 80% of its life; an hour covers any single request.
TOKEN_SECONDS = 3600
OPENSHIFT_REGISTRY = "image-registry.openshift-image-registry.svc"

Origin = Literal["registry-secret", "serviceaccount", "imagePullSecrets"]


def registry_host(key: str) -> str:
    """A docker config key or Tekton annotation value (`https://quay.io/v1/`, `quay.io`) as a host."""
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0]
    if host in ("index.docker.io", "docker.io"):
        return "registry-1.docker.io"
    return host


@dataclass(frozen=True)
class SecretInfo:
    """What the controller needs to know of one credential Secret (never its secret values)."""

    name: str
    type: str
    origin: Origin
    hosts: tuple[str, ...]


def secret_info(obj: Mapping[str, Any], origin: Origin) -> SecretInfo | None:
    """The registry hosts a Secret holds credentials for; None when it is not a usable kind for `origin`."""
    meta = obj.get("metadata") or {}
    name, typ = str(meta.get("name", "")), str(obj.get("type", ""))
    data = obj.get("data") or {}
    if typ in DOCKER_KEYS:
        raw = data.get(DOCKER_KEYS[typ])
        if raw is None:
            return None
        return SecretInfo(name, typ, origin, tuple(_docker_hosts(raw)))
    if typ == BASIC_AUTH and origin == "serviceaccount":
        annotations = meta.get("annotations") or {}
        hosts = [
            registry_host(v)
            for k, v in sorted(annotations.items())
            if k.startswith(TEKTON_DOCKER_ANNOTATION) and isinstance(v, str) and v.strip()
        ]
        if hosts and "username" in data and "password" in data:
            return SecretInfo(name, typ, origin, tuple(dict.fromkeys(hosts)))
    return None


def _docker_hosts(raw: str) -> list[str]:
    """Host keys of a `.dockerconfigjson` (under `auths`) or `.dockercfg` (top level); [] if unreadable."""
    try:
        doc = json.loads(base64.b64decode(raw))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return []
    if not isinstance(doc, dict):
        return []
    auths = doc.get("auths", doc)
    return [registry_host(k) for k in auths] if isinstance(auths, dict) else []


def select(sources: Iterable[SecretInfo], needed: Iterable[str]) -> list[SecretInfo]:
    """The Secrets to mount, in precedence order: the explicit one always, others only for a host the
    pod talks to that no earlier Secret covers."""
    want = {h for h in needed if h}
    covered: set[str] = set()
    chosen: list[SecretInfo] = []
    seen: set[str] = set()
    for s in sources:
        if s.name in seen:
            continue
        new = (set(s.hosts) & want) - covered
        if s.origin == "registry-secret" or new:
            chosen.append(s)
            seen.add(s.name)
            covered |= set(s.hosts)
    return chosen


def wants_token(registry_auth: str, hosts: Iterable[str]) -> list[str]:
    """Hosts that get the ServiceAccount token: every one with `serviceaccount`, OpenShift's internal
    registry with `auto`."""
    if registry_auth == "serviceaccount":
        return sorted({h for h in hosts if h})
    if registry_auth == "auto":
        return sorted({h for h in hosts if h and h.split(":")[0] == OPENSHIFT_REGISTRY})
    return []


@dataclass(frozen=True)
class CredentialMounts:
    volume: dict[str, Any] | None
    mount: dict[str, Any] | None
    args: list[str]


def mounts(secrets: list[SecretInfo], token_hosts: list[str]) -> CredentialMounts:
    """One projected, read-only volume with the chosen Secrets' keys (file names keep the precedence)
    and, for `token_hosts`, a short-lived ServiceAccount token; and the push program's flags."""
    sources: list[dict[str, Any]] = []
    for i, s in enumerate(secrets):
        if s.type in DOCKER_KEYS:
            key = DOCKER_KEYS[s.type]
            items = [{"key": key, "path": f"{i:02d}-{s.name}{key}"}]
        else:  # basic-auth: one directory per host, as the annotation named it
            items = [
                {"key": k, "path": f"{i:02d}-{s.name}.basic/{host}/{k}"}
                for host in s.hosts
                for k in ("username", "password")
            ]
        sources.append({"secret": {"name": s.name, "items": items}})
    args = ["--auth-dir", AUTH_DIR] if sources else []
    if token_hosts:
        sources.append({"serviceAccountToken": {"path": TOKEN_PATH, "expirationSeconds": TOKEN_SECONDS}})
        for host in token_hosts:
            args += ["--registry-token", f"{host}={AUTH_DIR}/{TOKEN_PATH}"]
    if not sources:
        return CredentialMounts(None, None, [])
    volume = {"name": "registry-auth", "projected": {"sources": sources}}
    mount = {"name": "registry-auth", "mountPath": AUTH_DIR, "readOnly": True}
    return CredentialMounts(volume, mount, args)
