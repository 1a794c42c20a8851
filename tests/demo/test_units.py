"""Plain unit tests of the demo's pure parts: model layout and determinism, sizes, tables, comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hack.demo import report
from hack.demo.model import layout, parse_size, write_model
from hack.demo.pipelines import demo_pipeline_run, write_script
from hack.demo.verify import compare
from hack.demo.watch import last_progress


def test_parse_size_needs_at_least_a_mebibyte() -> None:
    # the size syntax itself is tested with controller.model.quantity.parse_size
    assert parse_size("24M") == 24 << 20
    with pytest.raises(ValueError, match="at least 1M"):
        parse_size("100K")


def test_layout_adds_up_to_the_size_with_several_files() -> None:
    for size in (1 << 20, (24 << 20) + 3, 300 << 20):
        files = layout(size)
        assert sum(files.values()) == size
        assert len(files) >= 5
        assert sum(1 for n in files if n.endswith(".safetensors")) == 4


def test_model_is_deterministic(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a", 2 << 20)
    b = write_model(tmp_path / "b", 2 << 20)
    assert a == b
    assert {p.name: p.stat().st_size for p in (tmp_path / "a").iterdir()} == layout(2 << 20)
    shards = [h for n, h in a.items() if n.endswith(".safetensors")]
    assert len(set(shards)) == len(shards)  # different bytes per shard
    assert write_model(tmp_path / "c", 3 << 20) != a


def test_compare_reports_each_difference() -> None:
    want = {"a": "1", "b": "2", "c": "3"}
    assert compare(want, dict(want)) == []
    got = {"a": "1", "b": "x", "d": "4"}
    assert compare(want, got) == ["missing in image: c", "unexpected in image: d", "hash differs: b"]


def test_last_progress_takes_the_newest_progress_line() -> None:
    lines = [
        json.dumps({"event": "progress", "bytes_done": 1, "bytes_total": 10, "rate_bps": 5}),
        "buildah says something",
        json.dumps({"event": "progress", "bytes_done": 7, "bytes_total": 10, "rate_bps": 9}),
        json.dumps({"event": "retry", "what": "blob"}),
        '{"image": "r/x:1", "digest": "sha256:00"}',
    ]
    log = "\n".join(lines) + "\n"
    assert last_progress(log) == {"event": "progress", "bytes_done": 7, "bytes_total": 10, "rate_bps": 9}
    assert last_progress("") is None


def test_formatting() -> None:
    assert report.human(0) == "0 B"
    assert report.human(1536) == "1.5 KiB"
    assert report.human(300 << 20) == "300.0 MiB"
    assert report.rate(None) == "-"
    text = report.table(["a", "bb"], [["xxx", "y"]])
    assert text.splitlines() == ["a    bb", "---  --", "xxx  y"]
    line = report.progress_line("push", "Running", 5 << 20, 10 << 20, 1 << 20)
    assert "5.0 MiB / 10.0 MiB" in line and "50.0%" in line and "1.0 MiB/s" in line


def test_write_script_writes_every_file_of_the_layout_and_their_sums() -> None:
    size = 3 << 20
    script = write_script(size)
    for name, length in layout(size).items():
        assert f"> {name}" in script
        if name.endswith(".safetensors"):
            assert f"head -c {length} /dev/urandom > {name}" in script
    assert 'sha256sum * > "$(workspaces.model.path)/demo-model.sha256"' in script


def test_demo_pipeline_run_mixes_task_runs_and_the_custom_task() -> None:
    pr = demo_pipeline_run("x", "reg/step:1", 3 << 20, [{"name": "image", "value": "r/m:1"}], True)
    tasks = {t["name"]: t for t in pr["spec"]["pipelineSpec"]["tasks"]}
    assert list(tasks) == ["write-model", "push", "pull"]
    assert tasks["push"]["taskRef"] == {"apiVersion": "modelpush.dev/v1alpha1", "kind": "ModelImagePush"}
    assert tasks["push"]["runAfter"] == ["write-model"]
    assert tasks["pull"]["params"] == [{"name": "image", "value": "$(tasks.push.results.IMAGE_URL)"}]
    assert "volumeClaimTemplate" in pr["spec"]["workspaces"][0]
