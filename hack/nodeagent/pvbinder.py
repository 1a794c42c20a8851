"""Binds every pending PVC to a hostPath PV under <state-dir>/pv/<namespace>/<claim> (a tiny provisioner),
and deletes those PVs (and their directories) once their claim is gone."""

import logging
import shutil
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from hack.nodeagent.kube import MERGE, as_dict, status_code
from hack.nodeagent.volumes import pv_dir

log = logging.getLogger("nodeagent.pv")
LABEL = "modelpush.dev/local-pv"


def pv_for(pvc: dict[str, Any], path: Path) -> dict[str, Any]:
    meta, spec = pvc["metadata"], pvc.get("spec", {})
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "labels": {LABEL: "true"},
            "annotations": {"pv.kubernetes.io/provisioned-by": "modelpush.dev/local-node-agent"},
        },
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName") or "",
            "volumeMode": spec.get("volumeMode") or "Filesystem",
        },
    }


class PVBinder:
    def __init__(self, api: client.ApiClient, state_dir: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.state_dir = state_dir

    async def sync(self) -> None:
        pvcs = (
            await as_dict(self.core.list_persistent_volume_claim_for_all_namespaces(_preload_content=False))
        )["items"]
        for pvc in pvcs:
            if pvc.get("status", {}).get("phase") == "Bound" or pvc["metadata"].get("deletionTimestamp"):
                continue
            try:
                await self.bind(pvc)
            except client.ApiException as e:
                log.warning(
                    "binding failed",
                    extra={
                        "pvc": f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}",
                        "error": e.reason,
                    },
                )
        live = {p["metadata"]["uid"] for p in pvcs}
        paths = {pv_dir(self.state_dir, p["metadata"]["namespace"], p["metadata"]["name"]) for p in pvcs}
        await self.reclaim(live, paths)

    async def bind(self, pvc: dict[str, Any]) -> None:
        meta = pvc["metadata"]
        ns, name = meta["namespace"], meta["name"]
        path = pv_dir(self.state_dir, ns, name)
        path.mkdir(parents=True, exist_ok=True)
        pv = pv_for(pvc, path)
        pv_name = pv["metadata"]["name"]
        if pvc.get("spec", {}).get("volumeName") not in (None, "", pv_name):
            return  # statically bound by someone else to a PV we do not own
        try:
            await self.core.create_persistent_volume(pv, _preload_content=False)
        except client.ApiException as e:
            if e.status != 409:
                raise
        await self.core.patch_persistent_volume_status(
            pv_name, {"status": {"phase": "Bound"}}, _content_type=MERGE, _preload_content=False
        )
        ann = {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
        await self.core.patch_namespaced_persistent_volume_claim(
            name,
            ns,
            {"metadata": {"uid": meta["uid"], "annotations": ann}, "spec": {"volumeName": pv_name}},
            _content_type=MERGE,
            _preload_content=False,
        )
        status = {
            "phase": "Bound",
            "accessModes": pv["spec"]["accessModes"],
            "capacity": pv["spec"]["capacity"],
        }
        await self.core.patch_namespaced_persistent_volume_claim_status(
            name, ns, {"status": status}, _content_type=MERGE, _preload_content=False
        )
        log.info("pvc bound", extra={"pvc": f"{ns}/{name}", "pv": pv_name, "path": str(path)})

    async def reclaim(self, live_claims: set[str], live_paths: set[Path]) -> None:
        pvs = (
            await as_dict(
                self.core.list_persistent_volume(label_selector=f"{LABEL}=true", _preload_content=False)
            )
        )["items"]
        for pv in pvs:
            ref = pv["spec"].get("claimRef") or {}
            if ref.get("uid") in live_claims or pv["metadata"].get("deletionTimestamp"):
                continue
            try:
                await self.core.delete_persistent_volume(pv["metadata"]["name"], _preload_content=False)
            except client.ApiException as e:
                if status_code(e) != 404:
                    raise
            path = Path(pv["spec"].get("hostPath", {}).get("path", ""))
            # A new claim with the same namespace/name reuses the directory: leave it alone then.
            if path.is_relative_to(self.state_dir / "pv") and path not in live_paths:
                shutil.rmtree(path, ignore_errors=True)
            log.info("pv reclaimed", extra={"pv": pv["metadata"]["name"]})
