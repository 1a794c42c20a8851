"""Session logic behind the transport seam: token expiry, re-auth once on 401, retries; and the auth dir."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from multidict import CIMultiDict

from controller.push.auth import Credentials, load_auth_dir
from controller.push.errors import AuthError, InvalidInput, TransientError
from controller.push.session import ClientOptions, RegistrySession
from controller.push.transport import Request, Response
from controller.push.upload import UploadStrategy

HOST = "reg.test:5000"
CHALLENGE = 'Bearer realm="https://auth.test/token",service="reg"'


class ScriptedTransport:
    """Answers by a function of the request; records every request (a unit-level stand-in for HTTP)."""

    def __init__(self, answer: Callable[[Request], Response]) -> None:
        self.answer = answer
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        return self.answer(request)

    def stream(self, request: Request, chunk: int):  # pragma: no cover - not used here
        raise NotImplementedError

    async def close(self) -> None:
        return None


def _resp(status: int, body: bytes = b"", **headers: str) -> Response:
    return Response(status, CIMultiDict(headers), body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _registry(valid: set[str], tokens: list[str], lifetime: int = 20) -> Callable[[Request], Response]:
    """A bearer registry: the token service hands out t1, t2, ...; requests need a valid token."""

    def answer(req: Request) -> Response:
        if req.url.host == "auth.test":
            token = f"t{len(tokens) + 1}"
            tokens.append(token)
            assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
            return _resp(200, json.dumps({"token": token, "expires_in": lifetime}).encode())
        auth = req.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") in valid:
            return _resp(200, b"ok")
        return _resp(401, WWW_Authenticate=CHALLENGE)

    return answer


async def _session(transport: ScriptedTransport, clock: Clock) -> RegistrySession:
    opts = ClientOptions(credentials={HOST: Credentials("u", "p")}, backoff=0, retries=3)
    s = RegistrySession(opts, transport, clock)
    await s.__aenter__()
    return s


def _www(answer: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """CIMultiDict keys from kwargs cannot hold '-': rename WWW_Authenticate."""

    def wrapped(req: Request) -> Response:
        r = answer(req)
        if "WWW_Authenticate" in r.headers:
            r.headers["WWW-Authenticate"] = r.headers.pop("WWW_Authenticate")
        return r

    return wrapped


async def test_token_renewed_before_expiry_without_a_401() -> None:
    tokens: list[str] = []
    valid = {"t1", "t2"}
    transport = ScriptedTransport(_www(_registry(valid, tokens)))
    clock = Clock()
    s = await _session(transport, clock)
    assert (await s.request("GET", HOST, "/v2/r/blobs/x", scope="repository:r:pull")).status == 200
    assert tokens == ["t1"]
    clock.now += 5
    await s.request("GET", HOST, "/v2/r/blobs/x", scope="repository:r:pull")
    assert tokens == ["t1"]  # still fresh: cached
    clock.now += 12  # 17 s of a 20 s token: inside the renewal margin
    await s.request("GET", HOST, "/v2/r/blobs/x", scope="repository:r:pull")
    assert tokens == ["t1", "t2"]
    # no request was ever refused: the renewal happened before the token ran out
    statuses = [r.headers.get("Authorization", "") for r in transport.requests if r.url.host != "auth.test"]
    assert statuses[-1] == "Bearer t2"


async def test_revoked_token_reauth_once_then_auth_error() -> None:
    tokens: list[str] = []
    valid = {"t2"}  # t1 is refused as if expired early: one re-auth fixes it
    transport = ScriptedTransport(_www(_registry(valid, tokens)))
    s = await _session(transport, Clock())
    assert (
        await s.request("PATCH", HOST, "/v2/r/blobs/uploads/1", scope="s", body=lambda: b"x")
    ).status == 200
    assert tokens == ["t1", "t2"]
    valid.clear()  # now every token is refused: one retry, then a clear AuthError
    with pytest.raises(AuthError, match="rejected user 'u'"):
        await s.request("GET", HOST, "/v2/r/manifests/v1", scope="other")


async def test_transient_failures_are_retried_then_raised() -> None:
    calls = {"n": 0}

    def answer(req: Request) -> Response:
        if req.url.path == "/v2/":
            return _resp(200)
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientError("connection reset")
        return _resp(503) if calls["n"] == 3 else _resp(200)

    s = await _session(ScriptedTransport(answer), Clock())
    s.options.retries = 5
    assert (await s.request("GET", HOST, "/v2/x", scope="s")).status == 200
    assert calls["n"] == 4
    calls["n"] = -10
    s.options.retries = 2
    with pytest.raises(TransientError):
        await s.request("GET", HOST, "/v2/x", scope="s")


def test_auth_dir_precedence(tmp_path: Path) -> None:
    def cfg(doc: dict) -> str:
        return json.dumps(doc)

    def auth(u: str, p: str) -> dict:
        return {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}

    (tmp_path / "00-explicit.dockerconfigjson").write_text(cfg({"auths": {"quay.io": auth("explicit", "1")}}))
    basic = tmp_path / "01-sa.basic" / "quay.io"
    basic.mkdir(parents=True)
    (basic / "username").write_text("sa")
    (basic / "password").write_text("2")
    ghcr = tmp_path / "01-sa.basic" / "ghcr.io"
    ghcr.mkdir()
    (ghcr / "username").write_text("sa")
    (ghcr / "password").write_text("3")
    (tmp_path / "02-pull.dockercfg").write_text(
        cfg({"https://ghcr.io": auth("pull", "4"), "x.io": auth("p", "5")})
    )
    creds = load_auth_dir(tmp_path)
    assert creds == {
        "quay.io": Credentials("explicit", "1"),
        "ghcr.io": Credentials("sa", "3"),
        "x.io": Credentials("p", "5"),
    }
    assert "1" not in repr(creds["quay.io"])  # never printed


def test_token_file_is_read_at_each_use(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("one\n")
    c = Credentials("serviceaccount", password_file=f)
    assert c.secret() == "one"
    f.write_text("two")  # the kubelet rotated the projected token
    assert c.secret() == "two"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("streamed", UploadStrategy("streamed")),
        ("monolithic", UploadStrategy("monolithic")),
        ("chunked:4Mi", UploadStrategy("chunked", 4 << 20)),
        ("chunked:1048576", UploadStrategy("chunked", 1 << 20)),
    ],
)
def test_upload_strategy_parse(text: str, want: UploadStrategy) -> None:
    assert UploadStrategy.parse(text) == want


@pytest.mark.parametrize("text", ["chunked", "chunked:0", "chunked:x", "fast", "monolithic:1"])
def test_upload_strategy_invalid(text: str) -> None:
    with pytest.raises(InvalidInput, match="streamed, chunked"):
        UploadStrategy.parse(text)
