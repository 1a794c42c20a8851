"""Small TCP servers that put a real registry into states the tests need. They listen on the pod network's
gateway address (where the cluster's registry listens too), because the work pods that talk to them run in
containers on the real nodes and cannot reach the host's 127.0.0.1.

- `HangServer`: accepts connections and never answers, so a push stays running until it is cancelled or
  timed out.
- `DenyOnceProxy`: forwards to a real registry but answers the first non-ping request without a body
  (HEAD, GET or POST) with `403 Forbidden`, so exactly one push attempt fails (the work pod exits with an
  auth error) and the next attempt goes through untouched. Every forwarded request asks the registry for
  `Connection: close`, so each connection carries one request and the proxy sees every request line
  (with keep-alive the first denial fell on a PATCH in mid-upload, which the push program restarts
  within the same attempt: an upload interrupted, not an attempt failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from hack.localcluster.realcluster import RealCluster
from tests.support import loopback

__all__ = ["DenyOnceProxy", "HangServer", "gateway"]

_PING = (b"GET /v2/ ", b"HEAD /v2/ ")
_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")
_BODILESS = (b"GET ", b"HEAD ", b"POST ")


def close_after(request: bytes) -> bytes:
    """The request with its `Connection` header set to `close` (the head is in the first read)."""
    head, sep, rest = request.partition(b"\r\n\r\n")
    if not sep:
        return request
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + sep + rest


def gateway(rc: RealCluster) -> str:
    """The bridge gateway's IP: the host address that pods reach (the registry's own host)."""
    return rc.registry.rsplit(":", 1)[0]


# Accepts and never answers; `listen` is the gateway address (LoopbackServer's own parameter).
HangServer = loopback.HangServer


class DenyOnceProxy(loopback.LoopbackServer):
    def __init__(self, bind: str, upstream_host: str) -> None:
        super().__init__(bind)
        host, port = upstream_host.rsplit(":", 1)
        self._upstream = (host, int(port))
        self.denied: list[str] = []  # request lines answered with 403

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            first = await reader.read(65536)
            if not first:
                return
            if not first.startswith(_METHODS):
                await self._pipe(first, reader, writer)
                return
            if first.startswith(_BODILESS) and not first.startswith(_PING) and not self.denied:
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
            await self._pipe(close_after(first), reader, writer)
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
