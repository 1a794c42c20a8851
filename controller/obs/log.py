"""One JSON object per log line: ts level msg, then namespace name attempt pod reason and any other fields.

Call sites pass context as `extra={"fields": {...}}`. Never log secrets: nothing here reads Secret data.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_ORDER = ("namespace", "name", "attempt", "pod", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None) or {}
        for key in _ORDER:
            if key in fields:
                out[key] = fields[key]
        for key, value in fields.items():
            if key not in out:
                out[key] = value
        out["logger"] = record.name
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # library chatter (request bodies at debug) must never reach our logs
    for noisy in ("kubernetes_asyncio", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
