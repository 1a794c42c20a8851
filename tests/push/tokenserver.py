"""A minimal Docker token service (the Bearer flow's auth server) for a real docker-registry.

Issues RS256 JWTs signed with `openssl dgst` and carrying the signing certificate in `x5c`, which
docker-registry verifies against its `rootcertbundle`. Basic credentials are checked; `expired_first`
makes the first token already expired so the client's re-auth-on-401 path runs. `lifetime` is how
long a token really works at the registry (its `exp` is moved back by the registry's 60 s leeway), and
`expires_in` says so. `check` replaces the user table: an async function (username, password) -> the
subject or None (the ServiceAccount token service asks the API server with a TokenReview).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from hack.certs import RSA_2048, new_key, openssl, self_signed_cert
from hack.registry import LocalRegistry
from tests.support.loopback import serve_app

SERVICE = "model-image-push-test"
ISSUER = "model-image-push-test-issuer"
# distribution accepts a token until 60 s after its `exp` (registry/auth/token: Leeway)
REGISTRY_LEEWAY = 60


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(
        self,
        workdir: Path,
        users: dict[str, str],
        expired_first: int = 0,
        lifetime: int = 300,
        check: Callable[[str, str], Awaitable[str | None]] | None = None,
        listen: str = "127.0.0.1",
    ) -> None:
        self.dir = workdir
        self.listen = listen  # the pod network's gateway when work pods fetch tokens
        self.users = users
        self.lifetime = lifetime
        self.check = check
        self.expired_left = expired_first
        self.issued: list[dict] = []
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def realm(self) -> str:
        return f"http://{self.listen}:{self.port}/token"

    def registry_config(self) -> dict[str, str]:
        return {"realm": self.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(self.cert)}

    def _make_key(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        new_key(self.key, RSA_2048)
        self_signed_cert(self.cert, self.key, "/CN=token-signer", 2)
        der = openssl("x509", "-in", self.cert, "-outform", "DER")
        self._x5c = base64.b64encode(der).decode()

    async def start(self) -> None:
        await asyncio.to_thread(self._make_key)
        app = web.Application()
        app.router.add_get("/token", self._token)
        self._runner, self.port = await serve_app(app, self.listen)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = openssl("dgst", "-sha256", "-sign", self.key, stdin=signing_input.encode())
        return f"{signing_input}.{_b64(sig)}"

    async def _token(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if self.check is not None:
                user = await self.check(name, pw)
                if user is None:
                    return web.Response(status=401, text="token refused")
            elif self.users.get(name) != pw:
                return web.Response(status=401, text="bad credentials")
            else:
                user = name
        if user is None:
            return web.Response(status=401, text="credentials required")
        access = []
        for scope in request.query.getall("scope", []):
            typ, name, actions = scope.split(":")
            access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        exp = now + self.lifetime - REGISTRY_LEEWAY
        if self.expired_left > 0:
            self.expired_left -= 1
            exp = now - 3600  # far beyond the registry's 60 s leeway
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": request.query.get("service", ""),
            "exp": exp,
            "nbf": now - 10,
            "iat": now - 10,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        self.issued.append(claims)
        return web.json_response({"token": self._sign(claims), "expires_in": self.lifetime})


@asynccontextmanager
async def token_registry(
    work: Path, server: TokenServer, kind: str = "docker-registry"
) -> AsyncIterator[LocalRegistry]:
    """`server` started, and a registry under `work` that takes its tokens, listening where the server
    does; both stopped after."""
    await server.start()
    reg = LocalRegistry(
        work / "registry", token_auth=server.registry_config(), kind=kind, listen=server.listen
    )
    try:
        await reg.start()
        yield reg
    finally:
        await reg.stop()
        await server.stop()
