"""The asyncio TCP server on a free port that the tests' stand-in servers and proxies share.

It listens on 127.0.0.1 unless given another address (`listen`): servers that work pods on the real
nodes must reach listen on the pod network's gateway, the only host address pods reach.

Subclasses implement `_handle` (one call per connection). Closing the listening socket leaves open
connections alone, so `stop` also closes the writers a handler registered in `_writers`; a subclass that
tracks its connections differently overrides `_close_connections`.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web


class LoopbackServer:
    def __init__(self, listen: str = "127.0.0.1") -> None:
        self.listen = listen
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def host(self) -> str:
        return f"{self.listen}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.listen, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._close_connections()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _close_connections(self) -> None:
        for w in list(self._writers):
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class HangServer(LoopbackServer):
    """Reads whatever arrives and never answers (until the client gives up or the server stops)."""

    def __init__(self, listen: str = "127.0.0.1") -> None:
        super().__init__(listen)
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


async def serve_app(app: web.Application, listen: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Serve an aiohttp app on a free port of `listen`: (runner to clean up, port)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, listen, 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
