"""Image reference parsing (pure): `[docker://]host[:port]/repo/path[:tag][@sha256:...]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. `registry` is the host[:port] used for API calls."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag (default `latest`)."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """host/repository, as used in `url` results (`name@sha256:...`)."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Parse an image reference; raises InvalidInput with the offending text on anything malformed."""
    raw = text.strip()
    if raw.startswith("docker://"):
        raw = raw[len("docker://") :]
    if not raw:
        raise InvalidInput(f"empty image reference {text!r}")
    digest = None
    if "@" in raw:
        raw, digest = raw.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidInput(f"image reference {text!r}: digest must be sha256:<64 hex>")
    tag = None
    last = raw.rsplit("/", 1)[-1]
    if ":" in last:
        raw, tag = raw.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise InvalidInput(f"image reference {text!r}: invalid tag {tag!r}")
    first, _, rest = raw.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, raw
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _REPO_RE.match(repository):
        raise InvalidInput(
            f"image reference {text!r}: repository {repository!r} must be lowercase "
            "letters, digits and separators (. _ - /)"
        )
    if registry == DOCKER_HUB:
        registry = DOCKER_HUB_API
    return Reference(registry, repository, tag, digest)
