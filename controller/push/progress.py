"""Progress as JSON lines on stderr, at most one line per interval (contract A)."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class Progress:
    """Counts bytes moved; `add` is cheap and only prints when the interval has passed."""

    def __init__(self, total: int = 0, interval: float = 2.0, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self._last = self.started

    def add_total(self, n: int) -> None:
        self.total += n

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.emit()

    def emit(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        remaining = max(self.total - self.done, 0)
        eta = round(remaining / rate, 1) if rate > 0 else None
        line = {
            "event": "progress",
            "bytes_done": self.done,
            "bytes_total": self.total,
            "rate_bps": int(rate),
            "eta_s": eta,
        }
        self.stream.write(json.dumps(line) + "\n")
        self.stream.flush()


def log_event(event: str, **fields: object) -> None:
    """One JSON line on stderr for notable events (retries, mounts); never secrets."""
    sys.stderr.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stderr.flush()
