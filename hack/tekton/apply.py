"""Server-side apply of the few kinds the Tekton install needs (Namespace, CRD, ConfigMap)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kubernetes_asyncio import client

FIELD_MANAGER = "model-image-push-tekton"
APPLY = "application/apply-patch+yaml"


async def apply_manifest(api: client.ApiClient, doc: dict[str, Any]) -> None:
    """Apply one manifest; `force` takes over fields owned by others (e.g. a project test CRD of the same
    name, which the real Tekton CRD replaces)."""
    kind = doc["kind"]
    name = doc["metadata"]["name"]
    opts: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
    if kind == "Namespace":
        await client.CoreV1Api(api).patch_namespace(name, doc, **opts)
    elif kind == "ConfigMap":
        ns = doc["metadata"]["namespace"]
        await client.CoreV1Api(api).patch_namespaced_config_map(name, ns, doc, **opts)
    elif kind == "CustomResourceDefinition":
        await client.ApiextensionsV1Api(api).patch_custom_resource_definition(name, doc, **opts)
    else:
        raise ValueError(f"unsupported kind {kind}")


async def wait_crds_established(api: client.ApiClient, names: list[str], within: float = 60.0) -> None:
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + within
    pending = set(names)
    while pending:
        for name in sorted(pending):
            crd = await ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])} if crd.status else {}
            if conds.get("Established") == "True":
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not established after {within}s: {sorted(pending)}")
        await asyncio.sleep(0.5)
