"""Thin helpers over kubernetes_asyncio that speak plain dicts (no generated models on the hot path)."""

import json
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

MERGE = "application/merge-patch+json"


async def api_client(kubeconfig: str) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


async def as_dict(coro: Any) -> dict[str, Any]:
    """Await an API call made with ``_preload_content=False`` and decode its JSON body."""
    resp = await coro
    try:
        return json.loads(await resp.read())
    finally:
        resp.release()


def status_code(e: BaseException) -> int | None:
    return e.status if isinstance(e, ApiException) else None
