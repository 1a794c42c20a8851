"""OCI distribution API calls: manifests, blobs, mounts, referrers. The public face of the push engine.

Auth, TLS and retries live in `session.py`, HTTP in `transport.py`, blob uploads in `upload.py`;
`RegistryClient` puts them together. Its small public API (for build, copy, signing):
`get_manifest`, `head_manifest`, `put_manifest`, `blob_exists`, `get_blob_bytes`, `put_blob`,
`upload_blob`, `mount_blob`, `blob_source`, `referrers`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from yarl import URL

from .errors import DigestMismatch, NotFound, RegistryError, TransientError, UploadInterrupted
from .progress import Progress
from .session import ClientOptions, RegistrySession, errtext
from .transport import Transport
from .upload import BodySource, Uploader, UploadStrategy

__all__ = [
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "BodySource",
    "ClientOptions",
    "RegistryClient",
    "UploadStrategy",
    "gather_bounded",
    "sha256_digest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """Async client for several registries at once; use as `async with RegistryClient(opts) as c:`.

    `uploads` maps a registry host (or "*", every other host) to its `UploadStrategy` (the `upload`
    param); without one, blobs stream in one PATCH.
    """

    def __init__(
        self,
        options: ClientOptions | None = None,
        *,
        transport: Transport | None = None,
        uploads: dict[str, UploadStrategy] | None = None,
    ) -> None:
        self.session = RegistrySession(options, transport)
        self.options = self.session.options
        self.uploader = Uploader(self.session)
        self.uploads = dict(uploads or {})

    async def __aenter__(self) -> RegistryClient:
        await self.session.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.session.close()

    @property
    def use_sendfile(self) -> bool:
        return self.uploader.use_sendfile

    @use_sendfile.setter
    def use_sendfile(self, value: bool) -> None:
        self.uploader.use_sendfile = value

    async def ping(self, host: str) -> None:
        await self.session.ping(host)

    # ------------------------------------------------------------------ manifests

    async def get_manifest(self, host: str, repo: str, reference: str) -> tuple[bytes, str, str]:
        """Raw manifest bytes (digest-preserving), media type, digest."""
        resp = await self.session.request(
            "GET",
            host,
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if resp.status == 404:
            raise NotFound(f"manifest {host}/{repo}:{reference} not found")
        if resp.status != 200:
            raise RegistryError(f"GET manifest {host}/{repo}:{reference}: {resp.status} {errtext(resp.body)}")
        content = resp.body
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
        resp = await self.session.request(
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
        resp = await self.session.request(
            "PUT",
            host,
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull,push",
            headers={"Content-Type": media_type},
            body=lambda: content,
        )
        if resp.status not in (200, 201):
            raise RegistryError(f"PUT manifest {host}/{repo}:{reference}: {resp.status} {errtext(resp.body)}")
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatch(f"registry stored manifest {host}/{repo} as {got}, we sent {digest}")
        return digest

    async def referrers(
        self, host: str, repo: str, digest: str, artifact_type: str | None = None
    ) -> dict[str, Any] | None:
        """The OCI 1.1 referrers index of `digest`, or None when the registry has no referrers API."""
        await self.session.ping(host)
        url = URL(f"{self.session.base(host)}/v2/{repo}/referrers/{digest}")
        if artifact_type:
            url = url.with_query({"artifactType": artifact_type})
        resp = await self.session.request(
            "GET", host, url, scope=f"repository:{repo}:pull", headers={"Accept": OCI_INDEX}
        )
        # Registries without the API answer 404 (the spec), some 400/405 (their router has no such path).
        if resp.status in (400, 404, 405) and not resp.headers.get("Content-Type", "").startswith(OCI_INDEX):
            return None
        if resp.status != 200:
            raise RegistryError(
                f"GET referrers of {host}/{repo}@{digest}: {resp.status} {errtext(resp.body)}"
            )
        return json.loads(resp.body)

    # ------------------------------------------------------------------ blobs

    async def blob_exists(self, host: str, repo: str, digest: str) -> bool:
        resp = await self.session.request(
            "HEAD", host, f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull,push"
        )
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise RegistryError(f"HEAD blob {host}/{repo}@{digest}: {resp.status}")

    async def get_blob_bytes(self, host: str, repo: str, digest: str, limit: int = 16 << 20) -> bytes:
        """Small blobs only (configs): read into memory and verify."""
        resp = await self.session.request(
            "GET", host, f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull"
        )
        if resp.status == 404:
            raise NotFound(f"blob {host}/{repo}@{digest} not found")
        if resp.status != 200:
            raise RegistryError(f"GET blob {host}/{repo}@{digest}: {resp.status}")
        if len(resp.body) > limit or sha256_digest(resp.body) != digest:
            raise DigestMismatch(f"blob {host}/{repo}@{digest} content does not match its digest")
        return resp.body

    async def put_blob(self, host: str, repo: str, data: bytes, progress: Progress | None = None) -> str:
        """Upload a small in-memory blob (a config, a signature) unless present; returns its digest."""
        digest = sha256_digest(data)
        if not await self.blob_exists(host, repo, digest):

            async def source(offset: int) -> AsyncIterator[bytes]:
                yield data[offset:]

            await self.upload_blob(host, repo, digest, len(data), source, progress=progress)
        return digest

    def blob_source(self, host: str, repo: str, digest: str, chunk: int = 1 << 20) -> BodySource:
        """A BodySource streaming a blob from a registry, using Range to start at an offset."""

        async def open_at(offset: int) -> AsyncIterator[bytes]:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                async with self.session.stream(
                    host,
                    f"/v2/{repo}/blobs/{digest}",
                    scope=f"repository:{repo}:pull",
                    headers=headers,
                    chunk=chunk,
                ) as resp:
                    if resp.status not in (200, 206):
                        raise RegistryError(f"GET blob {host}/{repo}@{digest}: {resp.status}")
                    if offset and resp.status != 206:
                        raise RegistryError(f"{host} ignored Range for blob {digest}; cannot resume")
                    async for data in resp.chunks:
                        yield data
            except TransientError as exc:
                raise UploadInterrupted(f"reading blob {digest} from {host} failed: {exc}") from exc

        return open_at

    async def mount_blob(self, host: str, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True when the registry mounted it (201)."""
        await self.session.ping(host)
        resp = await self.session.request(
            "POST",
            host,
            URL(f"{self.session.base(host)}/v2/{repo}/blobs/uploads/").with_query(
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
                await self.uploader.cancel(host, repo, location)
            return False
        raise RegistryError(f"mount of {digest} into {host}/{repo}: {resp.status}")

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
        label: str = "",
    ) -> None:
        """Upload a blob with the host's strategy (`chunk_size` > 0 forces chunks of that size)."""
        strategy = self.uploads.get(host) or self.uploads.get("*") or UploadStrategy()
        if chunk_size > 0 and strategy.mode == "streamed":
            strategy = UploadStrategy("chunked", chunk_size)
        await self.uploader.upload_blob(
            host, repo, digest, size, source, strategy=strategy, progress=progress, label=label
        )


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
