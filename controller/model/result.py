"""The work pod's result document (contract between `controller.push` and the controller).

`python -m controller.push` writes one of these as JSON to stdout and to the pod's termination
message; the controller reads it back from the pod status. One definition keeps both sides in step.
"""

from __future__ import annotations

from pydantic import BaseModel


class PushResult(BaseModel):
    image: str
    digest: str
    url: str
    size: int
    layers: int
    bytes_uploaded: int = 0
    bytes_skipped: int = 0
    bytes_mounted: int = 0
    seconds: float = 0.0
    # format both: the OCI index the tag points at, and the ModelPack manifest in it (digest = modelcar)
    index_digest: str | None = None
    modelpack_digest: str | None = None
    # signing (issue 13): refs of what was attached, or why signing failed after a good push
    signature_ref: str | None = None
    attestation_ref: str | None = None
    signing_error: str | None = None


class ErrorBody(BaseModel):
    kind: str  # invalid-input | auth | registry | internal (exit codes 2, 3, 4, 1)
    message: str


class ErrorResult(BaseModel):
    error: ErrorBody
