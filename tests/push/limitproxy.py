"""An HTTP reverse proxy in front of a real registry that enforces size limits as hosted registries do.

`request_limit`: a PATCH/PUT body over this many bytes gets `status` (413 as GHCR's 4 MiB per
request and nginx's `client_max_body_size` answer; some registries say 416). `blob_limit`: an upload
reaching past this offset gets 413 with a `SIZE_INVALID` error (Quay's `MAXIMUM_LAYER_SIZE`).
Everything else goes to the registry unchanged, Host header included, so the registry's Location URLs
point back at the proxy. A refused body is read to the end first, so the client sees the refusal
rather than a reset connection.
"""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from tests.support.loopback import serve_app


class LimitProxy:
    def __init__(self, upstream: str, request_limit: int = 0, blob_limit: int = 0, status: int = 413) -> None:
        self.upstream = upstream
        self.status = status
        self.request_limit = request_limit
        self.blob_limit = blob_limit
        self.refused: list[tuple[str, int]] = []  # (method, body length) of every 413
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner, self.port = await serve_app(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    def _too_large(self, request: web.Request) -> web.Response | None:
        if request.method not in ("PATCH", "PUT"):
            return None
        length = request.content_length or 0
        if self.request_limit and length > self.request_limit:
            self.refused.append((request.method, length))
            return web.Response(status=self.status, text=f"{self.status} request too large")
        start = 0
        rng = request.headers.get("Content-Range", "")
        if rng:
            start = int(rng.split("-")[0])
        if self.blob_limit and start + length > self.blob_limit:
            self.refused.append((request.method, length))
            body = {"errors": [{"code": "SIZE_INVALID", "message": "layer exceeds MAXIMUM_LAYER_SIZE"}]}
            return web.Response(status=413, text=json.dumps(body), content_type="application/json")
        return None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        refused = self._too_large(request)
        if refused is not None:
            async for _ in request.content.iter_chunked(1 << 16):
                pass
            return refused
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("transfer-encoding",)}
        body = request.content.iter_chunked(1 << 16) if request.can_read_body else None
        async with self._client.request(
            request.method,
            f"http://{self.upstream}{request.rel_url}",
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as up:
            out = web.StreamResponse(status=up.status)
            for k, v in up.headers.items():
                if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                    out.headers.add(k, v)
            if up.content_length is not None:
                out.content_length = up.content_length
            await out.prepare(request)
            async for chunk in up.content.iter_chunked(1 << 16):
                await out.write(chunk)
            await out.write_eof()
            return out
