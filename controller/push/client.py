"""OCI distribution client on aiohttp: ping, auth (anonymous/Basic/Bearer), blobs, manifests.

Every aiohttp/ssl/OS error is translated into the tree in `errors.py`. Upload bodies are produced by
`BodySource` callables so a request can be replayed (after a 401) or resumed from an offset.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from .auth import Challenge, Credentials, parse_challenge
from .errors import (
    AuthError,
    DigestMismatch,
    NotFound,
    RegistryError,
    RegistryUnavailable,
    TransientError,
    Unreachable,
    UploadInterrupted,
)
from .progress import Progress, log_event

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)

# A body source returns the blob's bytes from `offset` on, as an async iterator of chunks.
BodySource = Callable[[int], AsyncIterator[bytes]]


@dataclass
class _RegistryState:
    """What we learned about one registry host: scheme, TLS, auth challenge and cached tokens."""

    host: str
    scheme: str = "https"
    ssl: ssl.SSLContext | bool = True
    challenge: Challenge | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    pinged: bool = False


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


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _limited(
    source: AsyncIterator[bytes], length: int, progress: Progress | None
) -> AsyncIterator[bytes]:
    """Yield exactly `length` bytes from `source` (splitting the last chunk), counting progress."""
    remaining = length
    try:
        async for chunk in source:
            if remaining <= 0:
                break
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
            remaining -= len(chunk)
            if progress is not None:
                progress.add(len(chunk))
            yield chunk
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
    if remaining > 0:
        raise UploadInterrupted(f"source ended {remaining} bytes early (did a file change while pushing?)")


class RegistryClient:
    """Async client for several registries at once; use as `async with RegistryClient(opts) as c:`."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self._states: dict[str, _RegistryState] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ping_locks: dict[str, asyncio.Lock] = {}
        self._token_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.use_sendfile = True  # plain-HTTP layer uploads from files go through sendfile(2)
        # --ca-file adds to the system CAs (create_default_context(cafile=...) would replace them, so a
        # private-CA bundle would break pulls of public base/source images)
        self._verify_ctx = ssl.create_default_context()
        if self.options.ca_file:
            self._verify_ctx.load_verify_locations(cafile=str(self.options.ca_file))

    async def __aenter__(self) -> RegistryClient:
        connector = aiohttp.TCPConnector(limit=self.options.connections, force_close=False)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.options.connect_timeout, sock_read=self.options.read_timeout
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("RegistryClient used outside `async with`")
        return self._session

    # ------------------------------------------------------------------ connection and auth

    def _is_insecure(self, host: str) -> bool:
        return host in self.options.insecure or host.split(":")[0] in self.options.insecure

    async def ping(self, host: str) -> None:
        """GET /v2/ once per host: picks the scheme and records the auth challenge."""
        lock = self._ping_locks.setdefault(host, asyncio.Lock())
        async with lock:
            state = self._states.get(host)
            if state is not None and state.pinged:
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
                    async with self.session.get(f"{scheme}://{host}/v2/", ssl=ctx) as resp:
                        await resp.read()
                        state = _RegistryState(host, scheme, ctx)
                        if resp.status == 401:
                            header = resp.headers.get("WWW-Authenticate", "")
                            state.challenge = parse_challenge(header) if header else None
                        elif resp.status >= 500:
                            raise Unreachable(f"registry {host} answered {resp.status} to /v2/")
                        state.pinged = True
                        self._states[host] = state
                        return
                except aiohttp.ClientConnectorCertificateError as exc:
                    raise Unreachable(
                        f"TLS certificate of {host} not trusted ({exc.certificate_error}); pass --ca-file "
                        f"with the registry's CA or --insecure-registry {host}"
                    ) from exc
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    last_exc = exc
            raise Unreachable(f"cannot reach registry {host}: {last_exc}") from last_exc

    def _state(self, host: str) -> _RegistryState:
        return self._states[host]

    def _base(self, host: str) -> str:
        st = self._state(host)
        return f"{st.scheme}://{host}"

    async def _token(self, host: str, scope: str, force: bool = False) -> str | None:
        """Bearer token for `scope` (space-separated scopes) from the challenge's realm, cached."""
        st = self._state(host)
        if st.challenge is None or st.challenge.scheme != "bearer":
            return None
        lock = self._token_locks.setdefault((host, scope), asyncio.Lock())
        async with lock:
            if not force and scope in st.tokens:
                return st.tokens[scope]
            realm = st.challenge.params.get("realm")
            if not realm:
                raise AuthError(f"registry {host} asked for Bearer auth without a realm")
            query: list[tuple[str, str]] = []
            if st.challenge.params.get("service"):
                query.append(("service", st.challenge.params["service"]))
            query.extend(("scope", s) for s in scope.split(" ") if s)
            headers = {}
            creds = self.options.credentials.get(host)
            if creds is not None:
                headers["Authorization"] = _basic(creds)
            realm_url = URL(realm)
            ctx = st.ssl if realm_url.host == host.split(":")[0] else self._verify_ctx
            try:
                async with self.session.get(realm_url.extend_query(query), headers=headers, ssl=ctx) as resp:
                    body = await resp.read()
                    if resp.status in (401, 403):
                        raise AuthError(
                            f"token service {realm} refused credentials for {host} "
                            f"({'user ' + creds.username if creds else 'anonymous'}, scope {scope})"
                        )
                    if resp.status != 200:
                        raise RegistryError(f"token service {realm} answered {resp.status}")
                    doc = json.loads(body)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                raise Unreachable(f"token service {realm} failed: {exc}") from exc
            token = doc.get("token") or doc.get("access_token")
            if not token:
                raise AuthError(f"token service {realm} returned no token")
            st.tokens[scope] = token
            return token

    async def _auth_headers(self, host: str, scope: str, force: bool = False) -> dict[str, str]:
        st = self._state(host)
        if st.challenge is None:
            return {}
        if st.challenge.scheme == "basic":
            creds = self.options.credentials.get(host)
            if creds is None:
                raise AuthError(f"registry {host} requires a login; pass --authfile with credentials for it")
            return {"Authorization": _basic(creds)}
        if st.challenge.scheme == "bearer":
            token = await self._token(host, scope, force)
            return {"Authorization": f"Bearer {token}"} if token else {}
        raise AuthError(f"registry {host} asked for unsupported auth scheme {st.challenge.scheme!r}")

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
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send one request with auth; re-auth once on 401; retry transient failures when `retry`.

        Returns the response (already released) and its body. `body` is a factory so a replay gets a
        fresh stream. 401/403 after auth raise AuthError; connection failures raise Unreachable or
        TransientError depending on whether the registry was reachable before.
        """
        await self.ping(host)
        st = self._state(host)
        if isinstance(url, URL):
            target = url
        elif url.startswith(("http://", "https://")):
            target = URL(url, encoded=True)  # a registry Location: keep its encoding (upload _state)
        else:
            target = URL(self._base(host) + url)
        attempts = self.options.retries if retry else 1
        reauthed = False
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            hdrs.update(await self._auth_headers(host, scope, force=reauthed))
            data = body() if body is not None else None
            try:
                async with self.session.request(
                    method, target, headers=hdrs, data=data, ssl=st.ssl, allow_redirects=True
                ) as resp:
                    content = await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if attempt < attempts:
                    log_event("retry", method=method, host=host, attempt=attempt, reason=str(exc)[:200])
                    await asyncio.sleep(self.options.backoff * 2 ** (attempt - 1))
                    continue
                raise TransientError(f"{method} {target.path} on {host} failed: {exc}") from exc
            if resp.status == 401:
                challenge = resp.headers.get("WWW-Authenticate", "")
                if not reauthed and challenge:
                    # Tokens expire (60 s by default) or need a wider scope: refresh once and replay.
                    st.challenge = parse_challenge(challenge)
                    reauthed = True
                    continue
                creds = self.options.credentials.get(host)
                who = f"user {creds.username!r}" if creds else "anonymous access"
                raise AuthError(
                    f"registry {host} rejected {who} for {method} {target.path} (401); "
                    "check the username/password in --authfile"
                )
            if resp.status == 403:
                raise AuthError(f"registry {host} denied {method} {target.path} (403): {_errtext(content)}")
            if (resp.status >= 500 or resp.status == 429) and retry:
                if attempt < attempts:
                    log_event("retry", method=method, host=host, attempt=attempt, status=resp.status)
                    await asyncio.sleep(self.options.backoff * 2 ** (attempt - 1))
                    continue
                # the registry is up but unhealthy: RegistryUnreachable, not a generic push failure
                detail = _errtext(content)
                raise TransientError(
                    f"{method} {target.path} on {host} answered {resp.status} {attempts} times"
                    + (f"; last: {detail}" if detail else "")
                )
            return resp, content

    # ------------------------------------------------------------------ manifests

    async def get_manifest(self, host: str, repo: str, reference: str) -> tuple[bytes, str, str]:
        """Raw manifest bytes (digest-preserving), media type, digest."""
        resp, content = await self.request(
            "GET",
            host,
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if resp.status == 404:
            raise NotFound(f"manifest {host}/{repo}:{reference} not found")
        if resp.status != 200:
            raise RegistryError(f"GET manifest {host}/{repo}:{reference}: {resp.status} {_errtext(content)}")
        digest = sha256_digest(content)
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatch(f"manifest {host}/{repo}@{reference} served with digest {digest}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            media_type = json.loads(content).get("mediaType", media_type)
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"manifest {host}/{repo}:{reference} has unsupported type {media_type!r}")
        return content, media_type, digest

    async def head_manifest(
        self, host: str, repo: str, reference: str, scope_action: str = "pull"
    ) -> str | None:
        resp, _ = await self.request(
            "HEAD",
            host,
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:{scope_action}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise RegistryError(f"HEAD manifest {host}/{repo}:{reference}: {resp.status}")
        return resp.headers.get("Docker-Content-Digest")

    async def put_manifest(
        self, host: str, repo: str, reference: str, content: bytes, media_type: str
    ) -> str:
        digest = sha256_digest(content)
        resp, body = await self.request(
            "PUT",
            host,
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull,push",
            headers={"Content-Type": media_type},
            body=lambda: content,
        )
        if resp.status not in (200, 201):
            raise RegistryError(f"PUT manifest {host}/{repo}:{reference}: {resp.status} {_errtext(body)}")
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatch(f"registry stored manifest {host}/{repo} as {got}, we sent {digest}")
        return digest

    # ------------------------------------------------------------------ blobs

    async def blob_exists(self, host: str, repo: str, digest: str) -> bool:
        resp, _ = await self.request(
            "HEAD", host, f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull,push"
        )
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise RegistryError(f"HEAD blob {host}/{repo}@{digest}: {resp.status}")

    async def get_blob_bytes(self, host: str, repo: str, digest: str, limit: int = 16 << 20) -> bytes:
        """Small blobs only (configs): read into memory and verify."""
        resp, content = await self.request(
            "GET", host, f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull"
        )
        if resp.status == 404:
            raise NotFound(f"blob {host}/{repo}@{digest} not found")
        if resp.status != 200:
            raise RegistryError(f"GET blob {host}/{repo}@{digest}: {resp.status}")
        if len(content) > limit or sha256_digest(content) != digest:
            raise DigestMismatch(f"blob {host}/{repo}@{digest} content does not match its digest")
        return content

    def blob_source(self, host: str, repo: str, digest: str, chunk: int = 1 << 20) -> BodySource:
        """A BodySource streaming a blob from a registry, using Range to start at an offset."""

        async def open_at(offset: int) -> AsyncIterator[bytes]:
            await self.ping(host)
            st = self._state(host)
            headers = await self._auth_headers(host, f"repository:{repo}:pull")
            if offset:
                headers["Range"] = f"bytes={offset}-"
            url = f"{self._base(host)}/v2/{repo}/blobs/{digest}"
            try:
                async with self.session.get(url, headers=headers, ssl=st.ssl) as resp:
                    if resp.status == 401:
                        headers.update(await self._auth_headers(host, f"repository:{repo}:pull", force=True))
                        raise UploadInterrupted(f"source token for {host}/{repo} expired")
                    if resp.status not in (200, 206):
                        raise RegistryError(f"GET blob {host}/{repo}@{digest}: {resp.status}")
                    if offset and resp.status != 206:
                        raise RegistryError(f"{host} ignored Range for blob {digest}; cannot resume")
                    async for data in resp.content.iter_chunked(chunk):
                        yield data
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise UploadInterrupted(f"reading blob {digest} from {host} failed: {exc}") from exc

        return open_at

    async def mount_blob(self, host: str, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True when the registry mounted it (201)."""
        await self.ping(host)
        resp, _ = await self.request(
            "POST",
            host,
            URL(f"{self._base(host)}/v2/{repo}/blobs/uploads/").with_query(
                {"mount": digest, "from": from_repo}
            ),
            scope=f"repository:{repo}:pull,push repository:{from_repo}:pull",
        )
        if resp.status == 201:
            return True
        if resp.status == 202:
            # The registry opened an upload instead; cancel it so it does not linger.
            location = resp.headers.get("Location")
            if location:
                await self._cancel(host, repo, location)
            return False
        raise RegistryError(f"mount of {digest} into {host}/{repo}: {resp.status}")

    async def _cancel(self, host: str, repo: str, location: str) -> None:
        try:
            await self.request(
                "DELETE", host, self._abs(host, location), scope=f"repository:{repo}:pull,push", retry=False
            )
        except (RegistryError, AuthError):
            pass

    def _abs(self, host: str, location: str) -> str:
        if location.startswith(("http://", "https://")):
            return location
        return self._base(host) + location

    async def _start_upload(self, host: str, repo: str) -> tuple[str, int]:
        """POST a new upload session: (location, the registry's minimum chunk length or 0)."""
        await self.ping(host)
        resp, content = await self.request(
            "POST", host, f"/v2/{repo}/blobs/uploads/", scope=f"repository:{repo}:pull,push"
        )
        if resp.status != 202 or "Location" not in resp.headers:
            raise RegistryError(f"starting upload to {host}/{repo}: {resp.status} {_errtext(content)}")
        try:
            min_chunk = int(resp.headers.get("OCI-Chunk-Min-Length", "0"))
        except ValueError:
            min_chunk = 0
        return self._abs(host, resp.headers["Location"]), min_chunk

    async def _upload_status(self, host: str, repo: str, location: str) -> tuple[int, str] | None:
        """Where the registry says an interrupted upload stands: (next offset, new location) or None."""
        try:
            resp, _ = await self.request(
                "GET", host, location, scope=f"repository:{repo}:pull,push", retry=False
            )
        except (TransientError, Unreachable):
            return None
        if resp.status != 204:
            return None
        rng = resp.headers.get("Range", "")
        new_loc = self._abs(host, resp.headers.get("Location", location))
        if not rng:
            return 0, new_loc
        try:
            end = int(rng.split("-")[-1])
        except ValueError:
            return None
        return end + 1, new_loc

    async def upload_blob(
        self,
        host: str,
        repo: str,
        digest: str,
        size: int,
        source: BodySource,
        *,
        chunk_size: int = 0,
        progress: Progress | None = None,
    ) -> None:
        """Upload a blob of known size and digest: PATCH(es) streaming from `source`, then PUT ?digest=.

        A dropped connection or a 5xx resumes from the registry's reported Range when the registry
        still has the session; when it has invalidated it (distribution 2.x does when a partial write
        landed), the blob restarts in a fresh session. Both are bounded by `retries`.
        """
        location, min_chunk = await self._start_upload(host, repo)
        if chunk_size > 0:
            chunk_size = max(chunk_size, min_chunk)
        offset = 0
        failures = 0
        scope = f"repository:{repo}:pull,push"
        while True:
            try:
                while offset < size:
                    length = size - offset if chunk_size <= 0 else min(chunk_size, size - offset)
                    location = await self._patch(
                        host, location, scope, source, offset, length, progress, ranged=chunk_size > 0
                    )
                    offset += length
                await self._finish(host, location, scope, digest)
                return
            except UploadInterrupted as exc:
                failures += 1
                if failures > self.options.retries:
                    raise RegistryUnavailable(
                        f"upload of {digest} to {host}/{repo} failed {failures} times; last error: {exc}"
                    ) from exc
                await asyncio.sleep(self.options.backoff * 2 ** (failures - 1))
                status = await self._upload_status(host, repo, location)
                if status is not None and status[0] <= size:
                    new_offset, location = status
                    log_event(
                        "resume", digest=digest, offset=new_offset, attempt=failures, reason=str(exc)[:200]
                    )
                else:
                    new_offset = 0
                    location, _ = await self._start_upload(host, repo)
                    log_event("restart", digest=digest, attempt=failures, reason=str(exc)[:200])
                if progress is not None:
                    progress.add(new_offset - offset)
                offset = new_offset

    async def _patch(
        self,
        host: str,
        location: str,
        scope: str,
        source: BodySource,
        offset: int,
        length: int,
        progress: Progress | None,
        ranged: bool,
    ) -> str:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
        }
        if ranged or offset:
            headers["Content-Range"] = f"{offset}-{offset + length - 1}"
        sent = 0

        def body() -> AsyncIterator[bytes]:
            nonlocal sent
            sent = 0

            async def gen() -> AsyncIterator[bytes]:
                nonlocal sent
                async for chunk in _limited(source(offset), length, None):
                    sent += len(chunk)
                    if progress is not None:
                        progress.add(len(chunk))
                    yield chunk

            return gen()

        segments = getattr(source, "segments", None)
        if segments is not None and self.use_sendfile and self._state(host).scheme == "http":
            status, resp_headers, content = await self._patch_sendfile(
                host, location, scope, headers, segments(offset, length), progress
            )
        else:
            try:
                resp, content = await self.request(
                    "PATCH", host, location, scope=scope, headers=headers, body=body, retry=False
                )
            except TransientError as exc:
                if progress is not None:
                    progress.add(-sent)
                raise UploadInterrupted(str(exc)) from exc
            status, resp_headers = resp.status, resp.headers
            if status != 202 and progress is not None:
                progress.add(-sent)
        if status != 202:
            if status >= 500 or status in (404, 416):
                raise UploadInterrupted(f"PATCH answered {status}: {_errtext(content)}")
            raise RegistryError(f"PATCH upload on {host}: {status} {_errtext(content)}")
        return self._abs(host, resp_headers.get("Location", location))

    async def _patch_sendfile(
        self,
        host: str,
        location: str,
        scope: str,
        headers: dict[str, str],
        segments: list[bytes | tuple[Path, int, int]],
        progress: Progress | None,
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """PATCH over a raw plain-HTTP connection whose file regions go out with sendfile(2).

        Saves copying every byte through user space, which matters on a small node where the registry
        and we share the CPUs. One connection per request (`Connection: close`) keeps it simple.
        """
        url = URL(location, encoded=True)
        loop = asyncio.get_running_loop()
        reauthed = False
        while True:
            hdrs = {**headers, **(await self._auth_headers(host, scope, force=reauthed))}
            sent = 0
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(url.host, url.port), self.options.connect_timeout
                )
            except (TimeoutError, OSError) as exc:
                raise UploadInterrupted(f"PATCH connect to {host} failed: {exc}") from exc
            try:
                head = [
                    f"PATCH {url.raw_path_qs} HTTP/1.1",
                    f"Host: {url.raw_authority}",
                    "Connection: close",
                ]
                head += [f"{k}: {v}" for k, v in hdrs.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                for seg in segments:
                    if isinstance(seg, bytes):
                        writer.write(seg)
                        sent += len(seg)
                        if progress is not None:
                            progress.add(len(seg))
                        continue
                    path, file_offset, count = seg
                    with open(path, "rb") as fh:  # noqa: ASYNC230 - open() is instant; the bytes go via sendfile
                        done = 0
                        while done < count:
                            # Pieces of 64 MiB so progress lines keep moving during a large file.
                            n = min(count - done, 64 << 20)
                            await writer.drain()
                            await loop.sendfile(writer.transport, fh, file_offset + done, n)
                            done += n
                            sent += n
                            if progress is not None:
                                progress.add(n)
                await writer.drain()
                status, resp_headers, content = await asyncio.wait_for(
                    _read_response(reader), self.options.read_timeout
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if progress is not None:
                    progress.add(-sent)
                raise UploadInterrupted(f"PATCH {url.path} on {host} failed: {exc!r}") from exc
            finally:
                writer.close()
            if status == 401 and not reauthed:
                if progress is not None:
                    progress.add(-sent)
                challenge = resp_headers.get("WWW-Authenticate", "")
                if challenge:
                    self._state(host).challenge = parse_challenge(challenge)
                reauthed = True
                continue
            if status == 401:
                raise AuthError(f"registry {host} rejected our credentials during an upload (401)")
            if status == 403:
                raise AuthError(f"registry {host} denied the upload (403): {_errtext(content)}")
            if status != 202 and progress is not None:
                progress.add(-sent)
            return status, resp_headers, content

    async def _finish(self, host: str, location: str, scope: str, digest: str) -> None:
        url = URL(location, encoded=True).update_query({"digest": digest})
        try:
            resp, content = await self.request(
                "PUT", host, url, scope=scope, headers={"Content-Length": "0"}, body=lambda: b"", retry=False
            )
        except TransientError as exc:
            raise UploadInterrupted(str(exc)) from exc
        if resp.status == 201:
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest:
                raise DigestMismatch(f"registry stored blob as {got}, expected {digest}")
            return
        text = _errtext(content)
        if resp.status == 400 and "DIGEST_INVALID" in text:
            raise DigestMismatch(f"registry computed a different digest than {digest} (source changed?)")
        if resp.status >= 500 or resp.status == 404:
            raise UploadInterrupted(f"PUT answered {resp.status}: {text}")
        raise RegistryError(f"finishing upload of {digest} on {host}: {resp.status} {text}")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, CIMultiDict[str], bytes]:
    """Status, headers and body of an HTTP/1.1 response on a `Connection: close` socket."""
    status_line = (await reader.readline()).decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad HTTP status line {status_line[:80]!r}")
    status = int(parts[1])
    headers: CIMultiDict[str] = CIMultiDict()
    while True:
        line = (await reader.readline()).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        key, _, value = line.partition(":")
        headers.add(key.strip(), value.strip())
    length = headers.get("Content-Length")
    body = await reader.readexactly(int(length)) if length is not None else await reader.read(1 << 20)
    return status, headers, body


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _errtext(content: bytes) -> str:
    """The registry's error codes/messages, short, for messages users read."""
    try:
        doc = json.loads(content)
        errs = doc.get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs)[:300]
    except (ValueError, AttributeError):
        return content[:200].decode("utf-8", "replace")


async def gather_bounded(limit: int, factories: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run coroutine factories with at most `limit` in flight; first error cancels the rest."""
    sem = asyncio.Semaphore(max(1, limit))

    async def run(f: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await f()

    tasks = [asyncio.ensure_future(run(f)) for f in factories]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
