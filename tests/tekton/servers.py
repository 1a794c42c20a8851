"""Small loopback TCP servers that put a real registry into states the tests need.

- `HangServer` (from tests.support.loopback): accepts connections and never answers, so a push stays
  running until it is cancelled or timed out.
- `DenyOnceProxy`: forwards to a real registry but answers the first non-ping request with
  `403 Forbidden`, so exactly one push attempt fails (the work pod exits with an auth error) and
  the next attempt goes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from tests.support.loopback import HangServer, LoopbackServer

__all__ = ["DenyOnceProxy", "HangServer"]

_PING = (b"GET /v2/ ", b"HEAD /v2/ ")
_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")


class DenyOnceProxy(LoopbackServer):
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
