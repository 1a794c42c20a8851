"""Blob uploads: streamed, chunked or monolithic, resumable, with a fallback to smaller chunks.

Upload bodies come from `BodySource` callables so a request can be replayed (after a 401) or resumed
from an offset. A source that also has `segments(offset, length)` (file regions) goes out through
sendfile(2) on plain-HTTP registries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from yarl import URL

from controller.model.quantity import parse_size

from .errors import (
    BlobTooLarge,
    DigestMismatch,
    InvalidInput,
    RegistryError,
    RegistryUnavailable,
    TransientError,
    UploadInterrupted,
)
from .progress import Progress, log_event
from .session import RegistrySession, errtext
from .transport import SendfileTransport

# A body source returns the blob's bytes from `offset` on, as an async iterator of chunks.
BodySource = Callable[[int], AsyncIterator[bytes]]

# The smallest chunk the 413/416 fallback goes down to; below it the registry's limit is not per request.
MIN_FALLBACK_CHUNK = 1 << 20

# Registry answers that mean "this blob is bigger than I accept" rather than a broken request.
_TOO_LARGE_MARKERS = ("too large", "size_invalid", "exceeds", "maximum", "limit")


@dataclass(frozen=True)
class UploadStrategy:
    """`streamed` (one PATCH per blob), `chunked:<size>` (PATCHes of that size) or `monolithic` (one PUT)."""

    mode: Literal["streamed", "chunked", "monolithic"] = "streamed"
    chunk_size: int = 0

    @classmethod
    def parse(cls, text: str) -> UploadStrategy:
        mode, _, size = text.strip().partition(":")
        if mode in ("streamed", "monolithic") and not size:
            return cls(mode)  # type: ignore[arg-type]
        n = 0
        if mode == "chunked":
            try:
                n = parse_size(size)
            except ValueError:
                n = 0
        if n <= 0:
            raise InvalidInput(
                f"upload {text!r}: expected streamed, chunked:<size> with a positive size (e.g. "
                "chunked:4Mi) or monolithic"
            )
        return cls("chunked", n)

    def __str__(self) -> str:
        return f"chunked:{self.chunk_size}" if self.mode == "chunked" else self.mode


async def _limited(
    source: AsyncIterator[bytes], length: int, sent: Callable[[int], None]
) -> AsyncIterator[bytes]:
    """Yield exactly `length` bytes from `source` (splitting the last chunk), reporting each chunk."""
    remaining = length
    try:
        async for chunk in source:
            if remaining <= 0:
                break
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
            remaining -= len(chunk)
            sent(len(chunk))
            yield chunk
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
    if remaining > 0:
        raise UploadInterrupted(f"source ended {remaining} bytes early (did a file change while pushing?)")


class _Sent:
    """Bytes of one request counted into progress, taken back when the request did not land."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.n = 0

    def __call__(self, n: int) -> None:
        self.n += n
        if self.progress is not None:
            self.progress.add(n)

    def undo(self) -> None:
        if self.progress is not None and self.n:
            self.progress.add(-self.n)
        self.n = 0


class Uploader:
    """Uploads blobs through a `RegistrySession`; one per client."""

    def __init__(self, session: RegistrySession) -> None:
        self.session = session
        self.use_sendfile = True  # plain-HTTP layer uploads from files go through sendfile(2)
        o = session.options
        self._sendfile = SendfileTransport(o.connect_timeout, o.read_timeout)

    async def _start(self, host: str, repo: str) -> tuple[str, int]:
        """POST a new upload session: (location, the registry's minimum chunk length or 0)."""
        resp = await self.session.request(
            "POST", host, f"/v2/{repo}/blobs/uploads/", scope=f"repository:{repo}:pull,push"
        )
        if resp.status != 202 or "Location" not in resp.headers:
            raise RegistryError(f"starting upload to {host}/{repo}: {resp.status} {errtext(resp.body)}")
        try:
            min_chunk = int(resp.headers.get("OCI-Chunk-Min-Length", "0"))
        except ValueError:
            min_chunk = 0
        return self.session.absolute(host, resp.headers["Location"]), min_chunk

    async def cancel(self, host: str, repo: str, location: str) -> None:
        try:
            await self.session.request(
                "DELETE",
                host,
                self.session.absolute(host, location),
                scope=f"repository:{repo}:pull,push",
                retry=False,
            )
        except RegistryError:
            pass

    async def _status(self, host: str, repo: str, location: str) -> tuple[int, str] | None:
        """Where the registry says an interrupted upload stands: (next offset, new location) or None."""
        try:
            resp = await self.session.request(
                "GET", host, location, scope=f"repository:{repo}:pull,push", retry=False
            )
        except TransientError:
            return None
        if resp.status != 204:
            return None
        rng = resp.headers.get("Range", "")
        new_loc = self.session.absolute(host, resp.headers.get("Location", location))
        if not rng:
            return 0, new_loc
        if rng.strip() == "0-0":
            # distribution says "0-0" both for nothing received and for one byte: start a fresh session.
            return None
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
        strategy: UploadStrategy | None = None,
        progress: Progress | None = None,
        label: str = "",
    ) -> None:
        """Upload a blob of known size and digest, then PUT ?digest=.

        A dropped connection or a 5xx resumes from the registry's reported Range when the registry
        still has the session; when it has invalidated it (distribution 2.x does when a partial write
        landed), the blob restarts in a fresh session. Both are bounded by `retries`. A 413/416 on a
        PATCH switches to smaller chunks (down to 1 MiB) and says so on the progress stream. `label`
        names the blob (a file) in errors.
        """
        strategy = strategy or UploadStrategy()
        label = label or digest
        location, min_chunk = await self._start(host, repo)
        chunk_size = strategy.chunk_size if strategy.mode == "chunked" else 0
        if chunk_size > 0:
            chunk_size = max(chunk_size, min_chunk)
        monolithic = strategy.mode == "monolithic"
        offset = 0
        failures = 0
        scope = f"repository:{repo}:pull,push"
        while True:
            try:
                if monolithic:
                    await self._put(host, location, scope, digest, source, size, progress, label)
                    return
                while offset < size:
                    length = size - offset if chunk_size <= 0 else min(chunk_size, size - offset)
                    location = await self._patch(
                        host, location, scope, source, offset, length, progress, ranged=chunk_size > 0
                    )
                    offset += length
                await self._put(host, location, scope, digest, None, 0, progress, label)
                return
            except _RequestTooLarge as exc:
                current = chunk_size or exc.length
                smaller = max(current // 4, min_chunk, MIN_FALLBACK_CHUNK)
                if current <= MIN_FALLBACK_CHUNK or smaller >= current:
                    raise _too_large(host, label, size, exc.answer) from exc
                log_event(
                    "upload-fallback",
                    digest=digest,
                    host=host,
                    status=exc.status,
                    chunk_size=smaller,
                    message=f"{host} refused a {exc.length}-byte request ({exc.status}); "
                    f"continuing in chunks of {smaller} bytes",
                )
                monolithic, chunk_size = False, smaller
                status = await self._status(host, repo, location)
                if status is not None and status[0] <= size:
                    new_offset, location = status
                else:
                    await self.cancel(host, repo, location)
                    new_offset = 0
                    location, _ = await self._start(host, repo)
                offset = new_offset
            except UploadInterrupted as exc:
                failures += 1
                if failures > self.session.options.retries:
                    raise RegistryUnavailable(
                        f"upload of {label} to {host}/{repo} failed {failures} times; last error: {exc}"
                    ) from exc
                await asyncio.sleep(self.session.options.backoff * 2 ** (failures - 1))
                status = await self._status(host, repo, location)
                if status is not None and status[0] <= size and not monolithic:
                    new_offset, location = status
                    log_event(
                        "resume", digest=digest, offset=new_offset, attempt=failures, reason=str(exc)[:200]
                    )
                else:
                    new_offset = 0
                    location, _ = await self._start(host, repo)
                    log_event("restart", digest=digest, attempt=failures, reason=str(exc)[:200])
                if progress is not None:
                    progress.add(new_offset - offset)
                offset = new_offset

    async def _send_body(
        self,
        method: str,
        host: str,
        url: str | URL,
        scope: str,
        headers: dict[str, str],
        source: BodySource,
        offset: int,
        length: int,
        sent: _Sent,
    ) -> tuple[int, object, bytes]:
        """One body-carrying request (PATCH or monolithic PUT), through sendfile when it can."""
        segments = getattr(source, "segments", None)
        use_sendfile = segments is not None and self.use_sendfile and self.session.scheme(host) == "http"

        def body() -> object:
            sent.undo()  # a replay after a 401 sends everything again
            if use_sendfile:
                return segments(offset, length)  # type: ignore[misc]
            return _limited(source(offset), length, sent)

        try:
            resp = await self.session.request(
                method,
                host,
                url,
                scope=scope,
                headers=headers,
                body=body,
                retry=False,
                transport=self._sendfile if use_sendfile else None,
                on_sent=sent if use_sendfile else None,
            )
        except TransientError as exc:
            sent.undo()
            raise UploadInterrupted(str(exc)) from exc
        return resp.status, resp.headers, resp.body

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
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        if ranged or offset:
            headers["Content-Range"] = f"{offset}-{offset + length - 1}"
        sent = _Sent(progress)
        status, resp_headers, content = await self._send_body(
            "PATCH", host, location, scope, headers, source, offset, length, sent
        )
        if status != 202:
            sent.undo()
            if status in (413, 416) and length > MIN_FALLBACK_CHUNK // 2:
                raise _RequestTooLarge(status, length, errtext(content))
            if status >= 500 or status in (404, 416):
                raise UploadInterrupted(f"PATCH answered {status}: {errtext(content)}")
            raise RegistryError(f"PATCH upload on {host}: {status} {errtext(content)}")
        return self.session.absolute(host, resp_headers.get("Location", location))  # type: ignore[attr-defined]

    async def _put(
        self,
        host: str,
        location: str,
        scope: str,
        digest: str,
        source: BodySource | None,
        size: int,
        progress: Progress | None,
        label: str,
    ) -> None:
        """PUT ?digest=: closes a chunked upload (empty body) or carries the whole blob (monolithic)."""
        url = URL(location, encoded=True).update_query({"digest": digest})
        sent = _Sent(progress)
        if source is None:
            try:
                resp = await self.session.request(
                    "PUT",
                    host,
                    url,
                    scope=scope,
                    headers={"Content-Length": "0"},
                    body=lambda: b"",
                    retry=False,
                )
            except TransientError as exc:
                raise UploadInterrupted(str(exc)) from exc
            status, content, resp_headers = resp.status, resp.body, resp.headers
        else:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            status, resp_headers, content = await self._send_body(  # type: ignore[assignment]
                "PUT", host, url, scope, headers, source, 0, size, sent
            )
        if status == 201:
            got = resp_headers.get("Docker-Content-Digest")  # type: ignore[union-attr]
            if got and got != digest:
                raise DigestMismatch(f"registry stored blob as {got}, expected {digest}")
            return
        sent.undo()
        text = errtext(content)
        if status == 400 and "DIGEST_INVALID" in text:
            raise DigestMismatch(f"registry computed a different digest than {digest} (source changed?)")
        if status in (413, 416) and source is not None:
            raise _RequestTooLarge(status, size, text)
        if status == 413 or any(m in text.lower() for m in _TOO_LARGE_MARKERS):
            raise _too_large(host, label, size, f"{status} {text}")
        if status >= 500 or status == 404:
            raise UploadInterrupted(f"PUT answered {status}: {text}")
        raise RegistryError(f"finishing upload of {label} on {host}: {status} {text}")


class _RequestTooLarge(Exception):
    """A 413/416 on one body-carrying request: try again in smaller chunks (internal to Uploader)."""

    def __init__(self, status: int, length: int, answer: str) -> None:
        super().__init__(f"{status} for a {length}-byte request")
        self.status, self.length, self.answer = status, length, answer


def _too_large(host: str, label: str, size: int, answer: str) -> BlobTooLarge:
    return BlobTooLarge(
        f"{host} refused {label} ({size} bytes) as too large: {answer or 'no details'}. Split the file "
        "into smaller parts, or raise the registry's limit (Quay: MAXIMUM_LAYER_SIZE; OpenShift: the "
        "openshift.io/Image LimitRange; a proxy in front: its request body limit)"
    )
