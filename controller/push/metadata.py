"""Image metadata (pure): OCI annotations for the manifest and labels for the config.

`created` comes from SOURCE_DATE_EPOCH (or 0), never the wall clock, so the same files and params give
the same digest. Optional values are left out rather than written empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

CREATED = "org.opencontainers.image.created"
TITLE = "org.opencontainers.image.title"
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
VERSION = "org.opencontainers.image.version"
# No standard key names a model; ours, under the project's API group.
MODEL_NAME = "modelpush.dev/model-name"
MODEL_VERSION = "modelpush.dev/model-version"
MODEL_FAMILY = "modelpush.dev/model-family"


@dataclass(frozen=True)
class ImageMeta:
    """What the user told us about the model (params model-*, source-url, source-revision)."""

    name: str | None = None
    version: str | None = None
    family: str | None = None
    source_url: str | None = None
    revision: str | None = None


def iso_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_annotations(meta: ImageMeta, epoch: int) -> dict[str, str]:
    """Annotations for the manifest (and index), equal to the config's labels. Nothing comes from the
    destination (not even a default title), so the same files and params give one digest in any repo."""
    values = {
        CREATED: iso_time(epoch),
        TITLE: meta.name,
        SOURCE: meta.source_url,
        REVISION: meta.revision,
        VERSION: meta.version,
        MODEL_NAME: meta.name,
        MODEL_VERSION: meta.version,
        MODEL_FAMILY: meta.family,
    }
    return {k: v for k, v in values.items() if v}
