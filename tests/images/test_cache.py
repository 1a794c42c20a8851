"""The layout cache: content keys and pruning old layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hack.images.cache import Key, build_slot, prune


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELPUSH_CACHE", str(tmp_path))
    return tmp_path / "images"


def test_key_separates_labels_from_data() -> None:
    assert Key("r").add("a", b"bc").hexdigest() != Key("r").add("ab", b"c").hexdigest()
    assert Key("r").add("a", b"x").hexdigest() == Key("r").add("a", b"x").hexdigest()


def test_build_slot_builds_once_and_prune_keeps_the_newest(cache: Path) -> None:
    for i, key in enumerate(("k1", "k2", "k3")):
        with build_slot("img", key) as (final, tmp):
            assert tmp is not None
            (tmp / "index.json").write_text("{}")
        os.utime(final, (1000 + i, 1000 + i))
    with build_slot("img", "k3") as (_, tmp):
        assert tmp is None  # cached
    gone = prune(keep=2)
    assert [p.name for p in gone] == ["img-k1"]
    assert sorted(p.name for p in cache.glob("img-*")) == ["img-k2", "img-k3"]
