"""A keyed work queue like client-go's: one worker per key at a time, duplicates collapse, delayed adds and
per-key exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable


class ShutDown(Exception):
    pass


class WorkQueue:
    def __init__(
        self,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._queue: deque[str] = deque()
        self._urgent: deque[str] = deque()  # handed out first: pod changes that finish runs
        self._urgent_later: set[str] = set()  # urgent adds while the key was being processed
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
        return len(self._queue) + len(self._urgent)

    def add(self, key: str, urgent: bool = False) -> None:
        """Queue a key once; `urgent` keys (a pod finished: a user waits for the status) jump the line."""
        if self._closed:
            return
        if key in self._dirty:
            if urgent and key in self._queue:
                self._queue.remove(key)
                self._urgent.append(key)
            elif urgent and key in self._processing:
                self._urgent_later.add(key)
            return
        self._dirty.add(key)
        if urgent and key in self._processing:
            self._urgent_later.add(key)
        if key not in self._processing:
            (self._urgent if urgent else self._queue).append(key)
            self._wake()
        self._on_depth(len(self))

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

    async def get(self) -> str:
        async with self._cond:
            while True:
                if self._closed:  # shutting down: hand out nothing more, queued keys wait for the next leader
                    raise ShutDown
                if self._queue or self._urgent:
                    break
                await self._cond.wait()
            key = self._urgent.popleft() if self._urgent else self._queue.popleft()
            self._processing.add(key)
            self._dirty.discard(key)
            self._on_depth(len(self))
            return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and key not in self._urgent and key not in self._queue:
            (self._urgent if key in self._urgent_later else self._queue).append(key)
            self._wake()
        self._urgent_later.discard(key)
        self._on_depth(len(self))

    async def shutdown(self) -> None:
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        async with self._cond:
            self._cond.notify_all()
