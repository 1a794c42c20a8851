"""Pure parts of build (config/manifest), result rendering, progress lines, CLI error handling."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from controller.push.build import make_config, make_manifest, source_date_epoch
from controller.push.cli import main
from controller.push.errors import InvalidInput
from controller.push.progress import Progress
from controller.push.result import ErrorBody, ErrorResult, render


def test_config_without_base() -> None:
    cfg = make_config(["sha256:a", "sha256:b"], ["x", "y"], 0, ("linux", "arm64"), None)
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]}
    assert (cfg["os"], cfg["architecture"], cfg["created"]) == ("linux", "arm64", "1970-01-01T00:00:00Z")
    assert len(cfg["history"]) == 2


def test_config_extends_base() -> None:
    base = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
        "history": [{"created_by": "base"}],
    }
    cfg = make_config(["sha256:m"], ["m"], 0, ("linux", "amd64"), base)
    assert cfg["rootfs"]["diff_ids"] == ["sha256:base", "sha256:m"]
    assert cfg["config"] == {"Env": ["PATH=/bin"]}
    assert base["rootfs"]["diff_ids"] == ["sha256:base"]  # input not mutated


def test_manifest_is_canonical() -> None:
    layers = [{"mediaType": "x", "digest": "sha256:a", "size": 1}]
    assert make_manifest(b"{}", layers) == make_manifest(b"{}", layers)
    doc = json.loads(make_manifest(b"{}", layers))
    assert doc["config"]["size"] == 2 and doc["schemaVersion"] == 2


def test_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch() == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(InvalidInput):
        source_date_epoch()


def test_error_result_stays_under_4k() -> None:
    text = render(ErrorResult(error=ErrorBody(kind="registry", message="x" * 10_000)))
    assert len(text.encode()) < 4096
    assert json.loads(text)["error"]["kind"] == "registry"


def test_progress_lines_are_rate_limited() -> None:
    out = io.StringIO()
    p = Progress(total=100, interval=3600, stream=out)
    for _ in range(10):
        p.add(10)
    assert out.getvalue() == ""
    p.emit()
    line = json.loads(out.getvalue())
    assert line["event"] == "progress" and line["bytes_done"] == 100 and line["bytes_total"] == 100


def test_cli_bad_flag_writes_result_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rf = tmp_path / "r.json"
    assert main(["build", "--context", str(tmp_path), "--result-file", str(rf)]) == 2
    assert json.loads(rf.read_text())["error"]["kind"] == "invalid-input"
