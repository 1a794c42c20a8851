"""The work pod's result document (contract between `controller.push` and the controller).

`python -m controller.push` writes one of these as JSON to stdout and to the pod's termination
message; the controller reads it back from the pod status. One definition keeps both sides in step.
An error carries an explicit `kind`, and each kind names exactly one reason, so the controller never
guesses the reason from the message text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from controller.model.reasons import Reason

ErrorKind = Literal["invalid-input", "auth", "unreachable", "registry", "internal"]

# kind -> (exit code, reason): the exit code is the fallback when no document could be read
KINDS: dict[str, tuple[int, Reason]] = {
    "internal": (1, Reason.PUSH_FAILED),
    "invalid-input": (2, Reason.INVALID_PARAMS),
    "auth": (3, Reason.AUTHENTICATION_FAILED),
    "registry": (4, Reason.PUSH_FAILED),
    "unreachable": (5, Reason.REGISTRY_UNREACHABLE),
}
EXIT_REASONS: dict[int, Reason] = {code: reason for code, reason in KINDS.values()}


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
    kind: ErrorKind
    message: str

    @property
    def reason(self) -> Reason:
        return KINDS[self.kind][1]


class ErrorResult(BaseModel):
    error: ErrorBody
