"""The pause image: Debian's catatonit in pause mode, pushed to a real registry, cached by content."""

from __future__ import annotations

from hack.images import ensure
from hack.images.oci import image_config
from hack.images.publish import inspect
from hack.registry import LocalRegistry


def test_pause_is_pushed_with_catatonit_p_entrypoint(registry: LocalRegistry) -> None:
    image = ensure(["pause"], registry.host)["pause"]
    assert image.ref == f"{registry.host}/modelpush/pause:{image.tag}"
    assert image_config(image.layout)["config"]["Entrypoint"] == ["/catatonit", "-P"]
    assert inspect(image.pinned)["Digest"] == image.digest


def test_warm_ensure_reuses_the_cached_layout(registry: LocalRegistry) -> None:
    first = ensure(["pause"], registry.host)["pause"]
    before = first.layout.stat().st_mtime_ns
    second = ensure(["pause"], registry.host)["pause"]
    assert second == first
    assert second.layout.stat().st_mtime_ns == before
