"""One exception tree for everything the push engine reports, so aiohttp/OS errors never leak to callers.

Each class carries the CLI exit code and the `kind` written into the result file (contract A).
"""

from __future__ import annotations


class PushError(Exception):
    """Base of every error the push engine raises on purpose."""

    kind = "internal"
    exit_code = 1


class InvalidInput(PushError):
    """Bad flags, missing or unsafe context directory, escaping symlink, malformed reference."""

    kind = "invalid-input"
    exit_code = 2


class AuthError(PushError):
    """The registry refused our credentials (401 after auth) or our access (403)."""

    kind = "auth"
    exit_code = 3


class RegistryError(PushError):
    """The registry failed: unreachable, 5xx after retries, unexpected answers."""

    kind = "registry"
    exit_code = 4


class Unreachable(RegistryError):
    """Could not connect (refused, DNS, TLS handshake) to the registry."""


class NotFound(RegistryError):
    """A manifest or blob the operation needs does not exist."""


class DigestMismatch(RegistryError):
    """The registry stored or served content whose digest differs from what we sent or expected."""


class UploadInterrupted(RegistryError):
    """An upload stream broke (dropped connection or 5xx); the caller may resume or retry."""


class TransientError(RegistryError):
    """A retryable failure (5xx, 429, connection reset) on a request without a body to resume."""


class BlobTooLarge(RegistryError):
    """The registry refused a blob for its size (a per-layer limit), even in the smallest chunks."""
