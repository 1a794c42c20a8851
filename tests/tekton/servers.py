"""Small loopback TCP servers that put a real registry into states the tests need.

- `HangServer`: accepts connections and never answers, so a push stays running until it is cancelled
  or timed out.
- `DenyOnceProxy`: forwards to a real registry but answers the first non-ping request with
  `403 Forbidden`, so exactly one push attempt fails (the work pod exits with an auth error) and
  the next attempt goes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

_PING = (b"GET /v2/ ", b"HEAD /v2/ ")
_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")


class _Server:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class HangServer(_Server):
    """Reads whatever arrives and never answers (until the client gives up or the server stops)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class DenyOnceProxy(_Server):
    def __init__(self, upstream_host: str) -> None:
        super().__init__()
        host, port = upstream_host.rsplit(":", 1)
        self._upstream = (host, int(port))
        self.denied: list[str] = []  # request lines answered with 403

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            first = await reader.read(65536)
            if not first:
                return
            is_http = first.startswith(_METHODS)
            if is_http and not first.startswith(_PING) and not self.denied:
                line = first.split(b"\r\n", 1)[0].decode(errors="replace")
                self.denied.append(line)
                body = json.dumps(
                    {"errors": [{"code": "DENIED", "message": "denied once by the test proxy"}]}
                ).encode()
                head = (
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                # A HEAD answer carries no body (aiohttp rejects one as a protocol error).
                writer.write(head.encode() + (b"" if first.startswith(b"HEAD ") else body))
                await writer.drain()
                return
            await self._pipe(first, reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _pipe(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ureader, uwriter = await asyncio.open_connection(*self._upstream)
        self._writers.add(uwriter)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.write_eof()

        try:
            uwriter.write(first)
            await uwriter.drain()
            await asyncio.gather(pump(reader, uwriter), pump(ureader, writer))
        finally:
            self._writers.discard(uwriter)
            uwriter.close()
