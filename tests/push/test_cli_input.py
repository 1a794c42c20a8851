"""Bad CLI input: exit code 2, kind invalid-input, a message naming the problem (no registry needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import run_cli

HOST = "127.0.0.1:9"  # never contacted: input is validated first


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["build", "--image", f"{HOST}/a/b:c"], "--context"),
        (["build", "--context", "/nonexistent/model", "--image", f"{HOST}/a/b:c"], "does not exist"),
        (["build", "--context", ".", "--image", "UPPER/Case:tag"], "lowercase"),
        (["build", "--context", ".", "--image", f"{HOST}/a/b:c", "--concurrency", "0"], "concurrency"),
        (["build", "--context", ".", "--image", f"{HOST}/a/b:c", "--chunk-size", "lots"], "chunk-size"),
        (["copy", f"{HOST}/a/b:c"], "dst"),
        (["frobnicate"], "invalid choice"),
        (
            ["build", "--context", ".", "--image", f"{HOST}/a/b:c", "--authfile", "/nonexistent.json"],
            "authfile",
        ),
    ],
)
def test_bad_input_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    run = run_cli(*args, result_file=tmp_path / "r.json")
    assert run.rc == 2, run.stderr
    err = json.loads((tmp_path / "r.json").read_text())["error"]
    assert err["kind"] == "invalid-input"
    assert needle in err["message"]


def test_escaping_symlink_is_refused(tmp_path: Path) -> None:
    ctx = tmp_path / "model"
    ctx.mkdir()
    (ctx / "ok.bin").write_bytes(b"x")
    (ctx / "passwd").symlink_to("../../../../etc/passwd")
    run = run_cli("build", "--context", str(ctx), "--image", f"{HOST}/a/b:c", result_file=tmp_path / "r.json")
    assert run.rc == 2
    assert "passwd" in run.result["error"]["message"]
    assert "outside" in run.result["error"]["message"]


def test_help_explains_flags() -> None:
    run = run_cli("build", "--help")
    assert run.rc == 0
    for flag in (
        "--context",
        "--image",
        "--base",
        "--insecure-registry",
        "--authfile",
        "--result-file",
        "--concurrency",
        "--chunk-size",
    ):
        assert flag in run.stdout
