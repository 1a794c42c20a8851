"""The work pod's result (contract A) read back from its termination message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.model.result import PushResult

# error kind -> reason; "registry" is refined by the message (unreachable vs. other push failures)
KIND_REASONS = {
    "invalid-input": "InvalidParams",
    "auth": "AuthenticationFailed",
    "registry": "PushFailed",
    "internal": "PushFailed",
}
EXIT_REASONS = {2: "InvalidParams", 3: "AuthenticationFailed", 4: "PushFailed"}
_UNREACHABLE_HINTS = (
    "unreachable",
    "connection refused",
    "cannot connect",
    "can't connect",
    "could not connect",
    "connect call failed",
    "name resolution",
    "no such host",
    "timed out",
    "timeout",
    "not trusted",  # TLS: the README lists TLS under RegistryUnreachable (fix: ca-bundle or insecure)
    "certificate verify failed",
)


@dataclass(frozen=True)
class PushFailure:
    reason: str
    message: str


def _load(message: str | None) -> dict[str, Any] | None:
    if not message:
        return None
    text = message.strip()
    # FallbackToLogsOnError may hand us log lines; the result is the last JSON object line
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and data.get("event") != "progress":
                return data
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def parse_success(message: str | None) -> PushResult | None:
    data = _load(message)
    if not data or "digest" not in data:
        return None
    try:
        return PushResult.model_validate(data)
    except ValidationError:
        return None


def parse_failure(message: str | None, exit_code: int | None) -> PushFailure:
    data = _load(message)
    error = data.get("error") if data else None
    if isinstance(error, dict):
        kind = str(error.get("kind", "internal"))
        text = str(error.get("message", "")) or f"the push failed ({kind})"
        reason = KIND_REASONS.get(kind, "PushFailed")
        if kind == "registry" and any(h in text.lower() for h in _UNREACHABLE_HINTS):
            reason = "RegistryUnreachable"
        return PushFailure(reason, text)
    reason = EXIT_REASONS.get(exit_code or 0, "PushFailed")
    tail = (message or "").strip()[-1000:]
    text = f"the push exited with code {exit_code}" + (f": {tail}" if tail else "")
    return PushFailure(reason, text)
