"""The work pod's result (contract A) read back from its termination message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.model.reasons import Reason
from controller.model.result import EXIT_REASONS, ErrorResult, PushResult


@dataclass(frozen=True)
class PushFailure:
    reason: Reason
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
            if isinstance(data, dict) and data.get("event") is None:
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
    """The reason comes from the document's explicit error kind, else from the exit code; never from text."""
    data = _load(message)
    if data and "error" in data:
        try:
            body = ErrorResult.model_validate(data).error
        except ValidationError:
            pass
        else:
            return PushFailure(body.reason, body.message or f"the push failed ({body.kind})")
    reason = EXIT_REASONS.get(exit_code or 0, Reason.PUSH_FAILED)
    tail = (message or "").strip()[-1000:]
    text = f"the push exited with code {exit_code}" + (f": {tail}" if tail else "")
    return PushFailure(reason, text)
