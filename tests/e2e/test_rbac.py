"""The controller with only a ServiceAccount token bound to config/rbac/role.yaml: the role suffices."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from tests.e2e.conftest import REPO, WS, CustomRuns, cond, model_pvc, results, skopeo_digest
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


async def _ensure_role(rbac: client.RbacAuthorizationV1Api) -> str:
    role = yaml.safe_load((REPO / "config" / "rbac" / "role.yaml").read_text())
    name = role["metadata"]["name"]
    try:
        await rbac.replace_cluster_role(name, role)
    except client.ApiException as e:
        if e.status != 404:
            raise
        await rbac.create_cluster_role(role)
    return name


def _kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


async def test_controller_runs_with_the_config_rbac_role_only(
    cluster, kube_api, controllers, crs: CustomRuns, make_pvc, registry, namespace, tmp_path, cosign
) -> None:
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    role = await _ensure_role(rbac)
    await core.create_namespaced_service_account(namespace, {"metadata": {"name": "mip-controller"}})
    binding = f"mip-controller-{namespace}"
    await rbac.create_cluster_role_binding(
        {
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "mip-controller", "namespace": namespace}],
        }
    )
    try:
        tr = await core.create_namespaced_service_account_token(
            "mip-controller", namespace, {"spec": {"expirationSeconds": 3600}}
        )
        kubeconfig = _kubeconfig(tmp_path / "sa.kubeconfig", cluster.server, cluster.ca_file, tr.status.token)
        # leader election on: the Lease verbs are part of what the role must grant
        ctl = await controllers(KUBECONFIG=str(kubeconfig), MODELPUSH_LEADER_ELECTION="true")
        await model_pvc(make_pvc, namespace)
        image = f"{registry.host}/{namespace}/rbac:v1"
        await crs.create("rbac-1", {"source": "dir:///workspace/model", "image": image}, WS)
        run = await crs.wait_done("rbac-1")
        assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
        assert await skopeo_digest(image) == results(run)["IMAGE_DIGEST"]
        assert {"Started", "Succeeded"} <= {e["reason"] for e in await crs.events("rbac-1")}
        # secrets are read too (preflight of registry-secret): a missing one is reported, not a 403 loop
        await crs.create(
            "rbac-2", {"source": "dir:///workspace/model", "image": image, "registry-secret": "nope"}, WS
        )
        assert cond(await crs.wait_done("rbac-2", limit=60))["reason"] == "MissingSecret"
        # signing: the role reads the key Secret, creates and deletes the per-run copy
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COSIGN_PASSWORD": "pw"}
        keygen = [cosign, "generate-key-pair", f"k8s://{namespace}/signing-secrets"]
        await asyncio.to_thread(
            subprocess.run, keygen, cwd=tmp_path, env=env, check=True, capture_output=True
        )
        await crs.create("rbac-3", {"source": "dir:///workspace/model", "image": image, "sign": "true"}, WS)
        run = await crs.wait_done("rbac-3")
        assert (cond(run)["status"], cond(run)["reason"]) == ("True", "Succeeded"), cond(run)
        assert results(run)["SIGNATURE_REF"] and results(run)["ATTESTATION_REF"]

        async def copy_deleted() -> bool:
            names = {x.metadata.name for x in (await core.list_namespaced_secret(namespace)).items}
            return "rbac-3-signing" not in names

        await wait_for(copy_deleted, 30, "per-run signing Secret deleted")
        assert "403 Forbidden" not in ctl.logs()
    finally:
        await rbac.delete_cluster_role_binding(binding)
