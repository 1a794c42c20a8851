"""The push program's error kind survives the pod boundary (issue 10, point 3): real registries that fail
in real ways give the `unreachable` kind (exit 5, RegistryUnreachable), and a digest-pinned build
destination is refused before any upload."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from controller.logic.results import parse_failure
from controller.model.reasons import Reason
from controller.push.errors import PushError, Unreachable, translate
from hack.ports import free_port
from hack.registry import LocalRegistry
from tests.push.helpers import run_build, run_cli

pytestmark = pytest.mark.registry


@pytest.fixture
def broken_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A real docker-registry whose storage root is a file: /v2/ answers 200, every blob call 500."""
    reg = LocalRegistry(tmp_path / "reg")
    reg.start_sync()
    try:
        shutil.rmtree(reg.root / "data", ignore_errors=True)
        (reg.root / "data").write_text("not a directory")
        yield reg
    finally:
        reg.stop_sync()


def _model(tmp_path: Path) -> Path:
    ctx = tmp_path / "model"
    ctx.mkdir()
    (ctx / "weights.bin").write_bytes(b"w" * 4096)
    return ctx


def _reason(result: dict, rc: int) -> Reason:
    return parse_failure(json.dumps(result), rc).reason


def test_5xx_after_retries_is_unreachable(broken_registry: LocalRegistry, tmp_path: Path) -> None:
    out = run_build(broken_registry.host, _model(tmp_path), "acme/m:v1", "--retries", "2")
    assert out.rc == 5, out.stderr
    assert out.result["error"]["kind"] == "unreachable"
    assert "answered 500 2 times" in out.result["error"]["message"]
    assert _reason(out.result, out.rc) is Reason.REGISTRY_UNREACHABLE


def test_connection_refused_is_unreachable(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    out = run_build(host, _model(tmp_path), "acme/m:v1", "--retries", "1")
    assert (out.rc, out.result["error"]["kind"]) == (5, "unreachable"), out.stderr
    assert _reason(out.result, out.rc) is Reason.REGISTRY_UNREACHABLE


def test_untrusted_tls_is_unreachable(tls_registry: LocalRegistry, tmp_path: Path) -> None:
    out = run_cli("build", "--context", str(_model(tmp_path)), "--image", f"{tls_registry.host}/acme/m:v1")
    assert (out.rc, out.result["error"]["kind"]) == (5, "unreachable"), out.stderr
    assert "not trusted" in out.result["error"]["message"]


def test_digest_pinned_build_is_refused_before_any_upload(registry: LocalRegistry, tmp_path: Path) -> None:
    repo = f"pinned-{free_port()}/m"
    out = run_build(registry.host, _model(tmp_path), f"{repo}@sha256:{'a' * 64}")
    assert (out.rc, out.result["error"]["kind"]) == (2, "invalid-input"), out.stderr
    assert "name a tag" in out.result["error"]["message"]
    assert _reason(out.result, out.rc) is Reason.INVALID_PARAMS
    assert not (registry.root / "data" / "docker" / "registry" / "v2" / "repositories" / repo).exists()


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (socket.gaierror(-2, "Name or service not known"), "unreachable"),
        (ConnectionResetError("reset by peer"), "unreachable"),
        (TimeoutError(), "unreachable"),
        (ssl.SSLError("handshake failure"), "unreachable"),
        (aiohttp.ServerDisconnectedError(), "unreachable"),
        (KeyError("x"), "internal"),
        (Unreachable("kept"), "unreachable"),
    ],
)
def test_translate_library_errors(exc: BaseException, kind: str) -> None:
    err = translate(exc)
    assert isinstance(err, PushError) and err.kind == kind
