"""HTTP transports for the registry session: aiohttp for everything, raw sendfile(2) for file uploads.

A transport sends one request and returns the whole response; it knows nothing of auth or retries
(that is `session.py`). Every aiohttp/OS error is translated here: a certificate failure becomes
`Unreachable` (retrying does not help), any other connection or read failure `TransientError`.
Unit tests inject their own `Transport` to exercise retry and re-auth without a registry.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import TransientError, Unreachable

# A body for the sendfile transport: bytes to write, or (file, offset, count) regions to sendfile.
Segment = bytes | tuple[Path, int, int]


@dataclass
class Request:
    method: str
    url: URL
    headers: Mapping[str, str]
    body: Any = None  # bytes, an async iterator of bytes, or (sendfile transport) a list of Segment
    ssl: ssl.SSLContext | bool = True
    on_sent: Callable[[int], None] | None = None  # sendfile transport: bytes written so far, as they go


@dataclass
class Response:
    status: int
    headers: CIMultiDict[str] | CIMultiDictProxy[str]
    body: bytes


@dataclass
class StreamResponse:
    status: int
    headers: CIMultiDictProxy[str]
    chunks: AsyncIterator[bytes]


class Transport(Protocol):
    async def send(self, request: Request) -> Response: ...

    def stream(self, request: Request, chunk: int) -> AbstractAsyncContextManager[StreamResponse]: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """The default transport: one pooled aiohttp session for every registry."""

    def __init__(self, connections: int, connect_timeout: float, read_timeout: float) -> None:
        connector = aiohttp.TCPConnector(limit=connections, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)

    async def send(self, request: Request) -> Response:
        with _translated(request):
            async with self._session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                ssl=request.ssl,
                allow_redirects=True,
            ) as resp:
                return Response(resp.status, resp.headers, await resp.read())
        raise AssertionError("unreachable")  # pragma: no cover - _translated always raises or returns

    @asynccontextmanager
    async def stream(self, request: Request, chunk: int) -> AsyncIterator[StreamResponse]:
        with _translated(request):
            async with self._session.request(
                request.method, request.url, headers=dict(request.headers), ssl=request.ssl
            ) as resp:

                async def chunks() -> AsyncIterator[bytes]:
                    with _translated(request):
                        async for data in resp.content.iter_chunked(chunk):
                            yield data

                yield StreamResponse(resp.status, resp.headers, chunks())

    async def close(self) -> None:
        await self._session.close()


class _translated:
    """Context manager: aiohttp/ssl/OS errors become the push error tree (the one place that does it)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None:
            return False
        where = f"{self.request.method} {self.request.url.path} on {self.request.url.raw_authority}"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            host = self.request.url.raw_authority
            raise Unreachable(
                f"TLS certificate of {host} not trusted ({exc.certificate_error}); pass --ca-file "
                f"with the registry's CA or --insecure-registry {host}"
            ) from exc
        if isinstance(exc, (TimeoutError, aiohttp.ClientError, OSError)):
            raise TransientError(f"{where} failed: {exc!r}") from exc
        return False


class SendfileTransport:
    """PATCH over a raw plain-HTTP connection whose file regions go out with sendfile(2).

    Saves copying every byte through user space, which matters on a small node where the registry
    and we share the CPUs. One connection per request (`Connection: close`) keeps it simple. Only
    `send` with a list of `Segment` bodies; auth and retries stay in the session like for aiohttp.
    """

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    async def send(self, request: Request) -> Response:
        url = request.url
        loop = asyncio.get_running_loop()
        where = f"{request.method} {url.path} on {url.raw_authority}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port), self.connect_timeout
            )
        except (TimeoutError, OSError) as exc:
            raise TransientError(f"{where}: connect failed: {exc!r}") from exc
        try:
            head = [f"{request.method} {url.raw_path_qs} HTTP/1.1", f"Host: {url.raw_authority}"]
            head += ["Connection: close"] + [f"{k}: {v}" for k, v in request.headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for seg in request.body or []:
                if isinstance(seg, bytes):
                    writer.write(seg)
                    self._sent(request, len(seg))
                    continue
                path, file_offset, count = seg
                with open(path, "rb") as fh:  # noqa: ASYNC230 - open() is instant; the bytes go via sendfile
                    done = 0
                    while done < count:
                        # Pieces of 64 MiB so progress lines keep moving during a large file.
                        n = min(count - done, 64 << 20)
                        await writer.drain()
                        await loop.sendfile(writer.transport, fh, file_offset + done, n)
                        done += n
                        self._sent(request, n)
            await writer.drain()
            status, headers, body = await asyncio.wait_for(read_response(reader), self.read_timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise TransientError(f"{where} failed: {exc!r}") from exc
        finally:
            writer.close()
        return Response(status, headers, body)

    @staticmethod
    def _sent(request: Request, n: int) -> None:
        if request.on_sent is not None:
            request.on_sent(n)

    def stream(self, request: Request, chunk: int) -> AbstractAsyncContextManager[StreamResponse]:
        raise NotImplementedError("the sendfile transport only uploads")

    async def close(self) -> None:
        return None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, CIMultiDict[str], bytes]:
    """Status, headers and body of an HTTP/1.1 response on a `Connection: close` socket."""
    status_line = (await reader.readline()).decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad HTTP status line {status_line[:80]!r}")
    status = int(parts[1])
    headers: CIMultiDict[str] = CIMultiDict()
    while True:
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        key, _, value = line.partition(":")
        headers.add(key.strip(), value.strip())
    length = headers.get("Content-Length")
    body = await reader.readexactly(int(length)) if length is not None else await reader.read(1 << 20)
    return status, headers, body
