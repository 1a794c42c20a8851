"""Pod volumes as local directories: PVC -> its PV's directory, emptyDir -> per-pod dir, Secret/ConfigMap/
projected/downwardAPI -> files written the way the kubelet projects them."""

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from controller.model.quantity import parse_quantity
from hack.nodeagent.envvars import field_value
from hack.nodeagent.kube import as_dict, status_code


class VolumeNotReady(Exception):
    """The pod must wait (reason/message become the container's waiting state, like FailedMount)."""


@dataclass
class Volumes:
    dirs: dict[str, Path] = field(default_factory=dict)  # volume name -> local directory
    # emptyDirs count toward the pod's ephemeral storage: name -> (dir, sizeLimit bytes)
    ephemeral: dict[str, tuple[Path, int | None]] = field(default_factory=dict)


def pv_dir(state_dir: Path, namespace: str, claim: str) -> Path:
    return state_dir / "pv" / namespace / claim


def _write(d: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = (d / rel).resolve()
        if not p.is_relative_to(d.resolve()):
            continue  # the API validates paths; this only guards against surprises
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _select(data: dict[str, bytes], items: list[dict[str, Any]] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {i["path"]: data[i["key"]] for i in items if i["key"] in data}


class VolumeBuilder:
    def __init__(self, api: client.ApiClient, state_dir: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.state_dir = state_dir

    async def prepare(self, pod: dict[str, Any], pod_dir: Path) -> Volumes:
        out = Volumes()
        for v in pod.get("spec", {}).get("volumes") or []:
            name = v["name"]
            if "persistentVolumeClaim" in v:
                out.dirs[name] = await self._pvc(pod, v["persistentVolumeClaim"]["claimName"])
                continue
            if "hostPath" in v:
                d = Path(v["hostPath"]["path"])
                if v["hostPath"].get("type") in ("DirectoryOrCreate", None, ""):
                    d.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - local, instant
                out.dirs[name] = d
                continue
            d = pod_dir / "volumes" / name
            d.mkdir(parents=True, exist_ok=True)
            out.dirs[name] = d
            if "emptyDir" in v:
                limit = (v["emptyDir"] or {}).get("sizeLimit")
                out.ephemeral[name] = (d, parse_quantity(limit) if limit else None)
            elif "secret" in v:
                s = v["secret"]
                _write(
                    d, _select(await self._secret(pod, s["secretName"], s.get("optional")), s.get("items"))
                )
            elif "configMap" in v:
                c = v["configMap"]
                _write(d, _select(await self._configmap(pod, c["name"], c.get("optional")), c.get("items")))
            elif "downwardAPI" in v:
                _write(d, self._downward(pod, v["downwardAPI"].get("items") or []))
            elif "projected" in v:
                await self._projected(pod, d, v["projected"].get("sources") or [])
            # Other volume types become empty directories: enough for processes that only write to them.
        return out

    async def _pvc(self, pod: dict[str, Any], claim: str) -> Path:
        ns = pod["metadata"]["namespace"]
        try:
            pvc = await as_dict(
                self.core.read_namespaced_persistent_volume_claim(claim, ns, _preload_content=False)
            )
        except client.ApiException as e:
            if status_code(e) == 404:
                raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found') from None
            raise
        pv_name = pvc.get("spec", {}).get("volumeName")
        if pvc.get("status", {}).get("phase") != "Bound" or not pv_name:
            raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound')
        pv = await as_dict(self.core.read_persistent_volume(pv_name, _preload_content=False))
        spec = pv.get("spec", {})
        src = spec.get("hostPath") or spec.get("local")
        d = Path(src["path"]) if src else pv_dir(self.state_dir, ns, claim)
        d.mkdir(parents=True, exist_ok=True)
        return d

    async def _secret(self, pod: dict[str, Any], name: str, optional: bool | None) -> dict[str, bytes]:
        ns = pod["metadata"]["namespace"]
        try:
            s = await as_dict(self.core.read_namespaced_secret(name, ns, _preload_content=False))
        except client.ApiException as e:
            if status_code(e) == 404 and optional:
                return {}
            if status_code(e) == 404:
                raise VolumeNotReady(f'secret "{name}" not found') from None
            raise
        return {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()}

    async def _configmap(self, pod: dict[str, Any], name: str, optional: bool | None) -> dict[str, bytes]:
        ns = pod["metadata"]["namespace"]
        try:
            c = await as_dict(self.core.read_namespaced_config_map(name, ns, _preload_content=False))
        except client.ApiException as e:
            if status_code(e) == 404 and optional:
                return {}
            if status_code(e) == 404:
                raise VolumeNotReady(f'configmap "{name}" not found') from None
            raise
        data = {k: v.encode() for k, v in (c.get("data") or {}).items()}
        data |= {k: base64.b64decode(v) for k, v in (c.get("binaryData") or {}).items()}
        return data

    @staticmethod
    def _downward(pod: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, bytes]:
        return {
            i["path"]: field_value(pod, i["fieldRef"]["fieldPath"]).encode() for i in items if "fieldRef" in i
        }

    async def _projected(self, pod: dict[str, Any], d: Path, sources: list[dict[str, Any]]) -> None:
        for src in sources:
            if "secret" in src:
                s = src["secret"]
                _write(d, _select(await self._secret(pod, s["name"], s.get("optional")), s.get("items")))
            elif "configMap" in src:
                c = src["configMap"]
                _write(d, _select(await self._configmap(pod, c["name"], c.get("optional")), c.get("items")))
            elif "downwardAPI" in src:
                _write(d, self._downward(pod, src["downwardAPI"].get("items") or []))
            elif "serviceAccountToken" in src:
                _write(
                    d,
                    {src["serviceAccountToken"]["path"]: await self._token(pod, src["serviceAccountToken"])},
                )

    async def _token(self, pod: dict[str, Any], spec: dict[str, Any]) -> bytes:
        meta = pod["metadata"]
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": spec.get("expirationSeconds", 3607),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        if spec.get("audience"):
            body["spec"]["audiences"] = [spec["audience"]]
        sa = pod["spec"].get("serviceAccountName") or "default"
        try:
            tr = await as_dict(
                self.core.create_namespaced_service_account_token(
                    sa, meta["namespace"], body, _preload_content=False
                )
            )
        except client.ApiException as e:
            raise VolumeNotReady(f"token for serviceaccount {sa}: {e.reason}") from None
        return str(tr.get("status", {}).get("token", "")).encode()
