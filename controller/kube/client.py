"""A thin JSON client over kubernetes_asyncio's ApiClient (which gives us kubeconfig/in-cluster auth and TLS).

Objects stay plain dicts: the controller reads a handful of fields and writes whole status blocks, so
the generated model classes would only add conversions. Every library error becomes `ApiError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """An API server answer outside 2xx, or a transport failure (status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


def _error_from_body(status: int, text: str) -> ApiError:
    try:
        body = json.loads(text)
        return ApiError(status, str(body.get("reason", "")), str(body.get("message", text)))
    except (json.JSONDecodeError, AttributeError):
        return ApiError(status, "", text[:500])


class KubeClient:
    def __init__(
        self, api: k8s_client.ApiClient, on_request: Callable[[str, int], None] | None = None
    ) -> None:
        self._api = api
        self._on_request = on_request or (lambda verb, code: None)

    @classmethod
    async def create(
        cls, kubeconfig: str | None = None, on_request: Callable[[str, int], None] | None = None
    ) -> KubeClient:
        """kubeconfig argument, else $KUBECONFIG, else ~/.kube/config, else the in-cluster ServiceAccount."""
        cfg = k8s_client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        if kubeconfig or os.environ.get("KUBECONFIG") or os.path.exists(path):  # noqa: ASYNC240
            await k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
        return cls(k8s_client.ApiClient(configuration=cfg), on_request)

    async def close(self) -> None:
        await self._api.close()

    async def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        request_timeout: float | None,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
        params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
        try:
            return await self._api.call_api(
                path,
                method,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=request_timeout,
            )
        except ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason or ""), str(exc.body or exc)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from None

    async def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = 30.0,
    ) -> dict[str, Any]:
        resp = await self._send(method, path, query, body, content_type, request_timeout)
        text = await self._read(method, resp)
        return json.loads(text) if text else {}

    async def get_text(self, path: str, query: dict[str, Any], request_timeout: float = 30.0) -> str:
        """GET whose answer is plain text, not JSON (pods/log)."""
        return await self._read("GET", await self._send("GET", path, query, None, None, request_timeout))

    async def _read(self, method: str, resp: Any) -> str:
        try:
            text = await resp.text(errors="replace")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from None
        finally:
            resp.release()
        self._on_request(method, resp.status)
        if resp.status >= 400:
            raise _error_from_body(resp.status, text)
        return str(text)

    async def watch(self, path: str, query: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events ({type, object}) until the server ends the stream."""
        resp = await self._send("GET", path, {**query, "watch": True}, None, None, None)
        self._on_request("WATCH", resp.status)
        try:
            if resp.status >= 400:
                raise _error_from_body(resp.status, await resp.text())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from None
        finally:
            resp.release()
