"""Result and error documents written to stdout and --result-file (contract A; kept under 4 KiB)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from controller.model.result import ErrorBody, ErrorResult, PushResult

__all__ = ["ErrorBody", "ErrorResult", "PushResult", "render", "write_result"]

MAX_RESULT_BYTES = 4000


def render(doc: BaseModel) -> str:
    text = doc.model_dump_json()
    if len(text.encode()) > MAX_RESULT_BYTES and isinstance(doc, ErrorResult):
        # Termination messages are capped at 4 KiB; keep the start of the message, it names the cause.
        doc = ErrorResult(error=ErrorBody(kind=doc.error.kind, message=doc.error.message[:3500] + "..."))
        text = doc.model_dump_json()
    return text


def write_result(doc: BaseModel, path: Path | None) -> str:
    text = render(doc)
    print(text, flush=True)
    if path is not None:
        path.write_text(text)
    return text


def dumps_canonical(obj: object) -> bytes:
    """JSON for configs/manifests we author: fixed key order and separators, so digests are stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
