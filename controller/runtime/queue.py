"""A keyed work queue like client-go's: one worker per key at a time, duplicates collapse, delayed adds and
per-key exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable


class ShutDown(Exception):
    pass


URGENT, FIRST, NORMAL = 0, 1, 2  # lanes, handed out in this order


class WorkQueue:
    """Three lanes: URGENT (a pod finished: a user waits for the status), FIRST (a run never reconciled: it
    waits for its pod), NORMAL (everything else: our own status writes echoed back, pods turning Running,
    progress reads). A burst of new runs then gets its pods before the echoes of the first ones are
    looked at, instead of sharing the workers with them in arrival order."""

    def __init__(
        self,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._lanes: tuple[deque[str], ...] = (deque(), deque(), deque())
        self._lane_of: dict[str, int] = {}  # queued keys and their lane
        self._later: dict[str, int] = {}  # adds while the key was being processed: the best lane asked
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[str, int] = {}
        self._base = base_delay
        self._max = max_delay
        self._cond = asyncio.Condition()
        self._closed = False
        self._on_depth = on_depth or (lambda n: None)

    def __len__(self) -> int:
        return len(self._lane_of)

    def add(self, key: str, urgent: bool = False, first: bool = False) -> None:
        """Queue a key once; `urgent` and `first` keys jump the line (see the class doc). A key already
        queued moves to the better lane; one being processed comes back in the best lane asked for."""
        if self._closed:
            return
        lane = URGENT if urgent else FIRST if first else NORMAL
        if key in self._processing:
            self._later[key] = min(lane, self._later.get(key, NORMAL))
            self._dirty.add(key)
            return
        current = self._lane_of.get(key)
        if current is not None:
            if lane < current:
                self._lanes[current].remove(key)
                self._put(key, lane)
            return
        self._dirty.add(key)
        self._put(key, lane)
        self._wake()
        self._on_depth(len(self))

    def _put(self, key: str, lane: int) -> None:
        self._lanes[lane].append(key)
        self._lane_of[key] = lane

    def add_after(self, key: str, delay: float) -> None:
        """Add later; an earlier pending timer for the key wins over a later one."""
        if self._closed:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._timers.get(key)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        handle = loop.call_later(delay, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self._max, self._base * 2**n) * (0.5 + random.random() / 2)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify()

        asyncio.get_running_loop().create_task(notify())

    async def get(self, first_before_urgent: bool = False) -> str:
        """The next key by lane. A worker with `first_before_urgent` takes FIRST keys before URGENT ones: when
        some workers do, a wave of finishing pods cannot stall the runs still waiting for a pod."""
        async with self._cond:
            while True:
                if self._closed:  # shutting down: hand out nothing more, queued keys wait for the next leader
                    raise ShutDown
                if self._lane_of:
                    break
                await self._cond.wait()
            order = (FIRST, URGENT, NORMAL) if first_before_urgent else (URGENT, FIRST, NORMAL)
            key = next(self._lanes[i] for i in order if self._lanes[i]).popleft()
            del self._lane_of[key]
            self._processing.add(key)
            self._dirty.discard(key)
            self._on_depth(len(self))
            return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        lane = self._later.pop(key, NORMAL)
        if key in self._dirty and key not in self._lane_of:
            self._put(key, lane)
            self._wake()
        self._on_depth(len(self))

    async def shutdown(self) -> None:
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        async with self._cond:
            self._cond.notify_all()
