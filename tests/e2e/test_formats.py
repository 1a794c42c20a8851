"""Issue 12 through the real controller: format both and the model params reach the work pod, and the
run's results carry IMAGE_INDEX_DIGEST (the tag's index) beside IMAGE_DIGEST (the runnable image)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.conftest import WS, CustomRuns, cond, model_pvc, results, skopeo_digest

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


async def test_format_both_reports_the_index(
    controllers, crs: CustomRuns, real_pvc, gateway_registry, real_namespace
) -> None:
    await controllers()
    await model_pvc(real_pvc, real_namespace)
    image = f"{gateway_registry.host}/{real_namespace}/both:v1"
    params = {
        "source": "dir:///workspace/model",
        "image": image,
        "format": "both",
        "model-name": "tiny",
        "model-version": "3",
    }
    await crs.create("both-1", params, WS)
    run = await crs.wait_done("both-1")
    c = cond(run)
    assert (c["status"], c["reason"]) == ("True", "Succeeded"), c
    res = results(run)
    assert await skopeo_digest(image) == res["IMAGE_INDEX_DIGEST"]  # the tag names the index
    proc = await asyncio.create_subprocess_exec(
        "skopeo",
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://{image}",
        stdout=asyncio.subprocess.PIPE,
    )
    index = json.loads((await proc.communicate())[0])
    assert index["manifests"][0]["digest"] == res["IMAGE_DIGEST"]
    assert index["manifests"][1]["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert index["annotations"]["org.opencontainers.image.title"] == "tiny"
    assert index["annotations"]["org.opencontainers.image.version"] == "3"
