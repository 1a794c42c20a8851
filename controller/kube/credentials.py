"""Reads the Secrets that may carry registry credentials for a run (see controller/logic/credentials.py).

Only host names leave this module: the Secrets' values are parsed for their registry keys and dropped.
"""

from __future__ import annotations

from typing import Any, Protocol

from controller.kube.client import ApiError
from controller.logic.credentials import Origin, SecretInfo, secret_info


class _Reads(Protocol):
    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None: ...


async def credential_secrets(
    api: _Reads, namespace: str, registry_secret: str | None, service_account: str
) -> tuple[SecretInfo, ...]:
    """The explicit Secret, then the ServiceAccount's `secrets`, then its `imagePullSecrets`, as found.

    A missing ServiceAccount or Secret is skipped (the explicit one is checked by the preflight, which
    reports it as MissingSecret); so is a 403, so a controller without these rights still works with
    `registry-secret` alone.
    """
    wanted: list[tuple[str, Origin]] = []
    if registry_secret:
        wanted.append((registry_secret, "registry-secret"))
    sa = await _optional(api.get_service_account(namespace, service_account))
    if sa is not None:
        wanted += [(ref["name"], "serviceaccount") for ref in sa.get("secrets") or [] if ref.get("name")]
        wanted += [
            (ref["name"], "imagePullSecrets") for ref in sa.get("imagePullSecrets") or [] if ref.get("name")
        ]
    found: list[SecretInfo] = []
    for name, origin in wanted:
        obj = await _optional(api.get_secret(namespace, name))
        info = secret_info(obj, origin) if obj is not None else None
        if info is not None:
            found.append(info)
    return tuple(found)


async def _optional(call: Any) -> dict[str, Any] | None:
    try:
        return await call
    except ApiError as err:
        if err.status == 403:
            return None
        raise
