"""The per-run signing Secret: copied from the key Secret before a signing pod starts, deleted at the end.

API verbs (config/rbac): `get` on the key Secret in the controller's namespace (a Role limited to its
name), `create` and `delete` of Secrets in run namespaces (the ClusterRole). The Secret's data is never
logged; only names are.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.kube.api import Api
from controller.kube.client import ApiError
from controller.logic.signing import copy_secret, per_run_secret, signing_secret_of, source_secret
from controller.model.customrun import CustomRun
from controller.settings import Settings

log = logging.getLogger("controller.signing")


class SigningSecrets:
    def __init__(self, api: Api, settings: Settings) -> None:
        self.api = api
        self.settings = settings
        self._made: set[tuple[str, str]] = set()  # (namespace, secret) created by this process

    async def prepare(self, run: CustomRun, pod: dict[str, Any]) -> None:
        """Before creating a pod that signs: copy the key into its per-run Secret (idempotent).

        A missing key Secret is not an error here: the pod mounts the copy as optional, pushes, and
        reports SigningFailed naming the Secret and key.
        """
        name = signing_secret_of(pod)
        if name is None:
            return
        ns = run.metadata.namespace
        src_ns, src_name = source_secret(self.settings)
        source = await self.api.get_secret(src_ns, src_name)
        manifest = copy_secret(run, source, self.settings) if source is not None else None
        if manifest is None:
            log.warning(
                "Signing key Secret missing or without cosign.key/cosign.password",
                extra={
                    "fields": {"namespace": ns, "name": run.metadata.name, "secret": f"{src_ns}/{src_name}"}
                },
            )
            return
        try:
            await self.api.client.request("POST", f"/api/v1/namespaces/{ns}/secrets", body=manifest)
        except ApiError as err:
            if not err.conflict:  # 409: a previous pass or attempt made it already
                raise
        self._made.add((ns, name))

    async def cleanup(self, run: CustomRun, signing: bool) -> None:
        """When a run is final: delete its per-run Secret (garbage collection also removes it with the
        CustomRun). `signing` says whether the run asked to sign, so a restarted controller still cleans."""
        ns, name = run.metadata.namespace, per_run_secret(run.metadata.name)
        if (ns, name) not in self._made and not signing:
            return
        self._made.discard((ns, name))
        try:
            await self.api.client.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/{name}")
        except ApiError as err:
            if not err.not_found:
                raise
