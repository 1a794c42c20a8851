"""ServiceAccount token auth, as for OpenShift's internal registry: the push program presents a real
ServiceAccount token as Basic auth's password to a registry whose token service checks it with a real
TokenReview on the local API server, and gets a registry token in exchange (`oc registry login`'s way).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from hack.registry import LocalRegistry

from .helpers import run_build
from .tokenserver import TokenServer, token_registry

pytestmark = [pytest.mark.registry, pytest.mark.cluster]


@pytest.fixture
async def sa_registry(
    real_api: client.ApiClient, tmp_path: Path
) -> AsyncIterator[tuple[TokenServer, LocalRegistry, list[str]]]:
    reviews: list[str] = []  # the usernames the API server vouched for

    async def token_review(_username: str, token: str) -> str | None:
        review = await client.AuthenticationV1Api(real_api).create_token_review({"spec": {"token": token}})
        status = review.status
        if not status.authenticated:
            return None
        reviews.append(status.user.username)
        return status.user.username

    server = TokenServer(tmp_path / "auth", {}, check=token_review)
    async with token_registry(tmp_path, server) as reg:
        yield server, reg, reviews


async def _sa_token(real_api: client.ApiClient, ns: str, name: str) -> str:
    core = client.CoreV1Api(real_api)
    await core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    # What the kubelet puts in a projected serviceAccountToken volume: a TokenRequest with an expiry.
    req = await core.create_namespaced_service_account_token(name, ns, {"spec": {"expirationSeconds": 600}})
    return req.status.token


async def test_serviceaccount_token_push_and_refusals(
    sa_registry: tuple[TokenServer, LocalRegistry, list[str]],
    real_api: client.ApiClient,
    real_namespace: str,
    tmp_path: Path,
) -> None:
    server, reg, reviews = sa_registry
    ctx = tmp_path / "model"
    ctx.mkdir()
    (ctx / "weights.bin").write_bytes(b"sa" * 100_000)
    token_file = tmp_path / "token"
    token_file.write_text(await _sa_token(real_api, real_namespace, "pipeline"))

    def push(repo: str):
        return run_build(reg.host, ctx, repo, "--registry-token", f"{reg.host}={token_file}")

    ok = await asyncio.to_thread(push, "ns/model:v1")
    assert ok.rc == 0, ok.stdout + ok.stderr[-2000:]
    assert reviews and reviews[0] == f"system:serviceaccount:{real_namespace}:pipeline"
    assert any("push" in a["actions"] for c in server.issued for a in c["access"])
    # The token never shows up in what the program prints.
    assert token_file.read_text() not in ok.stdout + ok.stderr

    # A wrong token: the API server does not vouch for it -> AuthenticationFailed (exit 3, kind auth).
    token_file.write_text("not-a-serviceaccount-token")
    bad = await asyncio.to_thread(push, "ns/model:v2")
    assert bad.rc == 3 and bad.result["error"]["kind"] == "auth", bad.stdout
    assert "refused credentials" in bad.result["error"]["message"]

    # A token that no longer holds (its ServiceAccount was deleted, like an expired one) -> the same.
    token_file.write_text(await _sa_token(real_api, real_namespace, "short-lived"))
    await client.CoreV1Api(real_api).delete_namespaced_service_account("short-lived", real_namespace)
    gone = await asyncio.to_thread(push, "ns/model:v3")
    assert gone.rc == 3 and gone.result["error"]["kind"] == "auth", gone.stdout
    assert json.loads(gone.stdout.splitlines()[-1])["error"]["kind"] == "auth"
