"""The registry session: TLS, the auth challenge, bearer tokens, retries and re-auth, in one place.

Every registry request (the aiohttp ones and the sendfile uploads alike) goes through
`RegistrySession.request`, which adds auth, refreshes a bearer token before it expires or once after a
401, and retries transient failures. The HTTP transport is a parameter (`transport.py`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

from .auth import Challenge, Credentials, parse_challenge
from .errors import AuthError, RegistryError, TransientError, Unreachable
from .progress import log_event
from .transport import AiohttpTransport, Request, Response, StreamResponse, Transport

# Docker's token spec: a token without `expires_in` lives 60 s.
DEFAULT_TOKEN_LIFETIME = 60.0


@dataclass
class ClientOptions:
    insecure: frozenset[str] = frozenset()
    ca_file: Path | None = None
    credentials: dict[str, Credentials] = field(default_factory=dict)
    retries: int = 5
    backoff: float = 0.5
    connect_timeout: float = 15.0
    read_timeout: float = 300.0
    connections: int = 16


@dataclass
class _Token:
    value: str
    expires_at: float  # on the session's monotonic clock


@dataclass
class _HostState:
    """What we learned about one registry host: scheme, TLS, auth challenge and cached tokens."""

    host: str
    scheme: str = "https"
    ssl: ssl.SSLContext | bool = True
    challenge: Challenge | None = None
    tokens: dict[str, _Token] = field(default_factory=dict)


class RegistrySession:
    """Authenticated requests to several registries; `async with RegistrySession(opts) as s:`."""

    def __init__(
        self,
        options: ClientOptions | None = None,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or ClientOptions()
        self._transport = transport
        self._clock = clock
        self._states: dict[str, _HostState] = {}
        self._ping_locks: dict[str, asyncio.Lock] = {}
        self._token_locks: dict[tuple[str, str], asyncio.Lock] = {}
        # --ca-file adds to the system CAs (create_default_context(cafile=...) would replace them, so a
        # private-CA bundle would break pulls of public base/source images)
        self._verify_ctx = ssl.create_default_context()
        if self.options.ca_file:
            self._verify_ctx.load_verify_locations(cafile=str(self.options.ca_file))

    async def __aenter__(self) -> RegistrySession:
        if self._transport is None:
            o = self.options
            self._transport = AiohttpTransport(o.connections, o.connect_timeout, o.read_timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise RuntimeError("registry session used outside `async with`")
        return self._transport

    # ------------------------------------------------------------------ hosts

    def _is_insecure(self, host: str) -> bool:
        return host in self.options.insecure or host.split(":")[0] in self.options.insecure

    async def ping(self, host: str) -> None:
        """GET /v2/ once per host: picks the scheme and records the auth challenge."""
        lock = self._ping_locks.setdefault(host, asyncio.Lock())
        async with lock:
            if host in self._states:
                return
            candidates: list[tuple[str, ssl.SSLContext | bool]]
            if self._is_insecure(host):
                # Insecure means "plain HTTP or unverified TLS": try TLS first, like docker does.
                candidates = [("https", False), ("http", False)]
            else:
                candidates = [("https", self._verify_ctx)]
            last_exc: Exception | None = None
            for scheme, ctx in candidates:
                try:
                    resp = await self.transport.send(
                        Request("GET", URL(f"{scheme}://{host}/v2/"), {}, ssl=ctx)
                    )
                except TransientError as exc:
                    last_exc = exc
                    continue
                state = _HostState(host, scheme, ctx)
                if resp.status == 401:
                    header = resp.headers.get("WWW-Authenticate", "")
                    state.challenge = parse_challenge(header) if header else None
                elif resp.status >= 500:
                    raise Unreachable(f"registry {host} answered {resp.status} to /v2/")
                self._states[host] = state
                return
            raise Unreachable(f"cannot reach registry {host}: {last_exc}") from last_exc

    def scheme(self, host: str) -> str:
        return self._states[host].scheme

    def base(self, host: str) -> str:
        return f"{self._states[host].scheme}://{host}"

    def absolute(self, host: str, location: str) -> str:
        """A registry's Location header as an absolute URL."""
        if location.startswith(("http://", "https://")):
            return location
        return self.base(host) + location

    def _target(self, host: str, url: str | URL) -> URL:
        if isinstance(url, URL):
            return url
        if url.startswith(("http://", "https://")):
            return URL(url, encoded=True)  # a registry Location: keep its encoding (upload _state)
        return URL(self.base(host) + url)

    # ------------------------------------------------------------------ auth

    def _credentials(self, host: str) -> Credentials | None:
        return self.options.credentials.get(host)

    def _who(self, host: str) -> str:
        creds = self._credentials(host)
        return f"user {creds.username!r}" if creds else "anonymous access"

    async def _token(self, host: str, scope: str, force: bool) -> str | None:
        """Bearer token for `scope` (space-separated scopes) from the challenge's realm, cached.

        A cached token is renewed before it expires (a quarter of its lifetime early, at most 10 s), so
        a long push does not send a request the registry will refuse halfway through its body.
        """
        st = self._states[host]
        if st.challenge is None or st.challenge.scheme != "bearer":
            return None
        lock = self._token_locks.setdefault((host, scope), asyncio.Lock())
        async with lock:
            cached = st.tokens.get(scope)
            if not force and cached is not None and self._clock() < cached.expires_at:
                return cached.value
            if cached is not None:
                log_event("token-refresh", host=host, scope=scope, forced=force)
            realm = st.challenge.params.get("realm")
            if not realm:
                raise AuthError(f"registry {host} asked for Bearer auth without a realm")
            query: list[tuple[str, str]] = []
            if st.challenge.params.get("service"):
                query.append(("service", st.challenge.params["service"]))
            query.extend(("scope", s) for s in scope.split(" ") if s)
            headers = {}
            creds = self._credentials(host)
            if creds is not None:
                headers["Authorization"] = basic_header(creds)
            realm_url = URL(realm)
            ctx = st.ssl if realm_url.host == host.split(":")[0] else self._verify_ctx
            asked = self._clock()
            try:
                resp = await self.transport.send(
                    Request("GET", realm_url.extend_query(query), headers, ssl=ctx)
                )
            except TransientError as exc:
                raise Unreachable(f"token service {realm} failed: {exc}") from exc
            if resp.status in (401, 403):
                raise AuthError(
                    f"token service {realm} refused credentials for {host} ({self._who(host)}, scope {scope})"
                )
            if resp.status != 200:
                raise RegistryError(f"token service {realm} answered {resp.status}")
            try:
                doc = json.loads(resp.body)
                token = doc.get("token") or doc.get("access_token")
                lifetime = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
            except (ValueError, TypeError, AttributeError) as exc:
                raise RegistryError(f"token service {realm} answered with invalid JSON ({exc})") from exc
            if not token:
                raise AuthError(f"token service {realm} returned no token")
            margin = min(10.0, lifetime / 4)
            st.tokens[scope] = _Token(token, asked + lifetime - margin)
            return token

    async def auth_headers(self, host: str, scope: str, force: bool = False) -> dict[str, str]:
        await self.ping(host)
        st = self._states[host]
        if st.challenge is None:
            return {}
        if st.challenge.scheme == "basic":
            creds = self._credentials(host)
            if creds is None:
                raise AuthError(f"registry {host} requires a login; pass --authfile with credentials for it")
            return {"Authorization": basic_header(creds)}
        if st.challenge.scheme == "bearer":
            token = await self._token(host, scope, force)
            return {"Authorization": f"Bearer {token}"} if token else {}
        raise AuthError(f"registry {host} asked for unsupported auth scheme {st.challenge.scheme!r}")

    def _rechallenge(self, host: str, resp_headers: Any) -> bool:
        """Record a 401's new challenge; False when the registry sent none (nothing to retry with)."""
        header = resp_headers.get("WWW-Authenticate", "")
        if not header:
            return False
        self._states[host].challenge = parse_challenge(header)
        return True

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        host: str,
        url: str | URL,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        retry: bool = True,
        transport: Transport | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> Response:
        """Send one request with auth; re-auth once on 401; retry transient failures when `retry`.

        `body` is a factory so a replay gets a fresh stream. 401/403 after auth raise AuthError; a
        connection failure on the last attempt raises TransientError (callers that can resume turn it
        into UploadInterrupted). `transport` overrides the session's (the sendfile uploads).
        """
        await self.ping(host)
        st = self._states[host]
        target = self._target(host, url)
        attempts = self.options.retries if retry else 1
        reauthed = False
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            hdrs.update(await self.auth_headers(host, scope, force=reauthed))
            data = body() if body is not None else None
            try:
                resp = await (transport or self.transport).send(
                    Request(method, target, hdrs, data, st.ssl, on_sent)
                )
            except TransientError as exc:
                if attempt < attempts:
                    log_event("retry", method=method, host=host, attempt=attempt, reason=str(exc)[:200])
                    await asyncio.sleep(self.options.backoff * 2 ** (attempt - 1))
                    continue
                raise
            if resp.status == 401:
                # The token expired early (clock skew, revoked) or needs a wider scope: renew and replay once.
                if not reauthed and self._rechallenge(host, resp.headers):
                    reauthed = True
                    continue
                raise AuthError(
                    f"registry {host} rejected {self._who(host)} for {method} {target.path} (401); "
                    "check the username/password in --authfile"
                )
            if resp.status == 403:
                raise AuthError(f"registry {host} denied {method} {target.path} (403): {errtext(resp.body)}")
            if (resp.status >= 500 or resp.status == 429) and retry:
                if attempt < attempts:
                    log_event("retry", method=method, host=host, attempt=attempt, status=resp.status)
                    await asyncio.sleep(self.options.backoff * 2 ** (attempt - 1))
                    continue
                # the registry is up but unhealthy: RegistryUnreachable, not a generic push failure
                detail = errtext(resp.body)
                raise TransientError(
                    f"{method} {target.path} on {host} answered {resp.status} {attempts} times"
                    + (f"; last: {detail}" if detail else "")
                )
            return resp

    @asynccontextmanager
    async def stream(
        self, host: str, url: str, *, scope: str, headers: dict[str, str] | None = None, chunk: int = 1 << 20
    ) -> AsyncIterator[StreamResponse]:
        """A streamed GET with auth, re-authenticating once on 401 (a blob read outliving its token)."""
        await self.ping(host)
        st = self._states[host]
        target = self._target(host, url)
        for force in (False, True):
            hdrs = {**(headers or {}), **(await self.auth_headers(host, scope, force=force))}
            async with self.transport.stream(Request("GET", target, hdrs, ssl=st.ssl), chunk) as resp:
                if resp.status == 401 and not force and self._rechallenge(host, resp.headers):
                    continue
                if resp.status == 401:
                    raise AuthError(f"registry {host} rejected {self._who(host)} for GET {target.path} (401)")
                yield resp
                return


def basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.secret()}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def errtext(content: bytes) -> str:
    """The registry's error codes/messages, short, for messages users read."""
    try:
        doc = json.loads(content)
        errs = doc.get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs)[:300]
    except (ValueError, AttributeError):
        return content[:200].decode("utf-8", "replace")
