"""One exception tree for everything the push engine reports, so aiohttp/OS errors never leak to callers.

    PushError                 kind internal      exit 1  -> PushFailed
    ├── InvalidInput          kind invalid-input exit 2  -> InvalidParams
    ├── AuthError             kind auth          exit 3  -> AuthenticationFailed
    └── RegistryError         kind registry      exit 4  -> PushFailed
        ├── NotFound, DigestMismatch, UploadInterrupted
        └── Unreachable       kind unreachable   exit 5  -> RegistryUnreachable
            ├── TransientError       (5xx, 429 or a dropped connection, after the retries)
            └── RegistryUnavailable  (an upload kept failing on 5xx/connection errors)

The kind is what the result document (`controller.model.result`) carries across the pod boundary; the
table there maps each kind to its exit code and condition reason.
"""

from __future__ import annotations

import socket
import ssl
from typing import ClassVar

import aiohttp

from controller.model.result import KINDS, ErrorKind


class PushError(Exception):
    """Base of every error the push engine raises on purpose."""

    kind: ClassVar[ErrorKind] = "internal"

    @property
    def exit_code(self) -> int:
        return KINDS[self.kind][0]


class InvalidInput(PushError):
    """Bad flags, missing or unsafe context directory, escaping symlink, malformed reference."""

    kind = "invalid-input"


class AuthError(PushError):
    """The registry refused our credentials (401 after auth) or our access (403)."""

    kind = "auth"


class RegistryError(PushError):
    """The registry answered, but not as the push needs (unexpected status, bad content)."""

    kind = "registry"


class Unreachable(RegistryError):
    """Could not connect (refused, DNS, TLS handshake) to the registry, or it kept failing (5xx/429)."""

    kind = "unreachable"


class NotFound(RegistryError):
    """A manifest or blob the operation needs does not exist."""


class DigestMismatch(RegistryError):
    """The registry stored or served content whose digest differs from what we sent or expected."""


class UploadInterrupted(RegistryError):
    """An upload stream broke (dropped connection or 5xx); the caller may resume or retry."""


class TransientError(Unreachable):
    """A retryable failure (5xx, 429, connection reset) that outlasted the retries."""


class RegistryUnavailable(Unreachable):
    """An upload kept breaking on 5xx or connection errors until the retries ran out."""


def translate(exc: BaseException) -> PushError:
    """The one place where an exception that escaped the engine becomes part of the tree: connection,
    DNS and TLS failures are `Unreachable`; anything else unexpected is `internal`."""
    if isinstance(exc, PushError):
        return exc
    if isinstance(exc, ssl.SSLError | aiohttp.ClientConnectorCertificateError):
        return Unreachable(f"TLS failure talking to the registry: {exc}")
    if isinstance(exc, aiohttp.ClientConnectionError | socket.gaierror | ConnectionError | TimeoutError):
        return Unreachable(f"cannot reach the registry: {type(exc).__name__}: {exc}")
    return PushError(f"{type(exc).__name__}: {exc}")


class BlobTooLarge(RegistryError):
    """The registry refused a blob for its size (a per-layer limit), even in the smallest chunks."""
