"""Live progress of a running push, read from the end of the work pod's log (pure).

The push program prints `{"event": "progress", "bytes_done", "bytes_total", "rate_bps", "eta_s"}` lines on
stderr (controller.push.progress); the controller shows the newest one under `extraFields.progress`.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Seen:
    done: int
    total: int
    rate_bps: int
    eta_s: float | None


def jittered(interval: float, pod_name: str) -> float:
    """The read interval of one pod: `interval` plus up to a fifth more, fixed per pod name. Hundreds of pods
    started together would otherwise all read their logs in the same second, every interval (a burst that
    competes with pod creation); a fixed spread keeps "at most one read per interval" and decide() pure."""
    return interval * (1.0 + (zlib.crc32(pod_name.encode()) % 1000) / 5000.0)


def parse_progress(log_tail: str) -> Seen | None:
    """The newest well-formed progress line in `log_tail`, or None."""
    for line in reversed(log_tail.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and '"progress"' in line):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by tailLines/limitBytes: try the one before
        if not isinstance(data, dict) or data.get("event") != "progress":
            continue
        try:
            done, total = int(data.get("bytes_done") or 0), int(data.get("bytes_total") or 0)
            rate = int(data.get("rate_bps") or 0)
            eta = data.get("eta_s")
            return Seen(max(done, 0), max(total, 0), max(rate, 0), None if eta is None else float(eta))
        except (TypeError, ValueError):
            continue
    return None


def progress_fields(seen: Seen, updated_at: str) -> dict[str, Any]:
    """The `extraFields.progress` object (camelCase like the rest of the status)."""
    # rounded down: a push 99.96% through is not shown as 100.0% (seen on the real cluster)
    percent = math.floor(1000 * seen.done / seen.total) / 10 if seen.total else None
    return {
        "bytesDone": seen.done,
        "bytesTotal": seen.total,
        "percent": percent,
        "mibPerSecond": round(seen.rate_bps / MIB, 1),
        "etaSeconds": None if seen.eta_s is None else round(seen.eta_s),
        "updatedAt": updated_at,
    }


def progress_text(fields: dict[str, Any] | None) -> str:
    """One short phrase for the condition message, e.g. `42.0% of 48.0 GiB at 250.3 MiB/s, ETA 3m12s`."""
    if not fields or not fields.get("bytesTotal"):
        return ""
    size, rate = _size(fields["bytesTotal"]), fields.get("mibPerSecond", 0)
    text = f"{fields.get('percent') or 0}% of {size} at {rate} MiB/s"
    eta = fields.get("etaSeconds")
    if eta is not None:
        minutes, seconds = divmod(int(eta), 60)
        text += f", ETA {minutes}m{seconds:02d}s" if minutes else f", ETA {seconds}s"
    return text


def _size(n: int) -> str:
    """GiB from 1 GiB on, MiB below it (a 26 MiB model is not "0.0 GiB")."""
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / MIB:.1f} MiB"
