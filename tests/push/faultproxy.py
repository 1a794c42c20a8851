"""A small TCP proxy on loopback that forwards to a real registry and can drop connections mid-stream.

`FaultProxy(upstream_port, drop_after=N, drops=K, listen=..., upstream_host=...)` (both 127.0.0.1 unless
given): once N client-to-server bytes have passed (counted
over all connections), the connection carrying byte N is cut (both directions, RST), up to K times.
With `cut_before=b"PATCH "` the cut happens instead just before the next request starting with that
marker once N bytes have passed, so the registry sees none of that request (a stale connection).
With `rate=B` client-to-server traffic is throttled to about B bytes per second over all connections
(a slow link, so a push outlives its registry token). `unauthorized` counts the 401 answers that came
back through the proxy.
`hold()` makes new connections wait before reaching the registry until `release()` (a registry that
stalls, to keep a push open); `held` counts the connections waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from tests.support.loopback import LoopbackServer


class FaultProxy(LoopbackServer):
    def __init__(
        self,
        upstream_port: int,
        drop_after: int = 0,
        drops: int = 0,
        cut_before: bytes | None = None,
        rate: float = 0.0,
        listen: str = "127.0.0.1",
        upstream_host: str = "127.0.0.1",
    ) -> None:
        super().__init__(listen)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.cut_before = cut_before
        self.drop_after = drop_after
        self.drops_left = drops
        self.dropped = 0
        self.total = 0  # client-to-server bytes over all connections
        self.rate = rate
        self.unauthorized = 0
        self._started = 0.0
        self.held = 0
        self._open = asyncio.Event()
        self._open.set()
        self._tasks: set[asyncio.Task] = set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def _close_connections(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        if not self._open.is_set():
            self.held += 1
            try:
                await self._open.wait()
            except asyncio.CancelledError:
                cwriter.close()
                self._tasks.discard(task)
                return
            finally:
                self.held -= 1
        try:
            ureader, uwriter = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            cwriter.close()
            self._tasks.discard(task)
            return
        cut = asyncio.Event()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while not cut.is_set():
                    data = await src.read(1 << 16)
                    if not data:
                        break
                    if upstream and self.drops_left > 0 and self.total + len(data) > self.drop_after:
                        at = max(self.drop_after - self.total, 0)
                        if self.cut_before is not None:
                            at = data.find(self.cut_before, at)
                        if at >= 0:
                            dst.write(data[:at])
                            await dst.drain()
                            self.total += at
                            self.drops_left -= 1
                            self.dropped += 1
                            cut.set()
                            break
                    if upstream:
                        self.total += len(data)
                        await self._throttle()
                    else:
                        self.unauthorized += data.count(b"HTTP/1.1 401 ")
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if cut.is_set():
                    for w in (cwriter, uwriter):
                        _abort(w)
                else:
                    with contextlib.suppress(Exception):
                        dst.write_eof() if dst.can_write_eof() else dst.close()

        try:
            await asyncio.gather(pump(creader, uwriter, True), pump(ureader, cwriter, False))
        except asyncio.CancelledError:
            pass  # proxy stopping; returning normally keeps asyncio's stream callback quiet
        finally:
            for w in (cwriter, uwriter):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _throttle(self) -> None:
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        if not self._started:
            self._started = loop.time()
        ahead = self.total / self.rate - (loop.time() - self._started)
        if ahead > 0:
            await asyncio.sleep(ahead)


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(Exception):
        if sock is not None:
            # SO_LINGER 0: close with RST, as a dropped network path would look to the peer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()
