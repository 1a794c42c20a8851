"""The thin applier: read the CustomRun and its pod, ask `logic.decision.decide`, carry out the decision."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from controller.kube.api import Api
from controller.kube.client import ApiError
from controller.kube.credentials import credential_secrets
from controller.kube.informer import Informer
from controller.kube.signing import SigningSecrets
from controller.logic import naming
from controller.logic.decision import Decision, decide
from controller.logic.params import defaults_from_spec
from controller.logic.patch import merge_patch
from controller.logic.pod import AUTH_KEYS, CA_KEYS, Facts, PvcInfo, workspace_claims
from controller.logic.signing import run_asks_to_sign
from controller.model.customrun import CustomRun
from controller.model.params import is_object_name
from controller.obs.metrics import Metrics
from controller.settings import Settings

log = logging.getLogger("controller.reconcile")
COMPONENT = "model-image-push-controller"
MAX_PASSES = 4  # a reconcile re-decides after 409s and adoptions; bounded so a flapping object can't spin


class Reconciler:
    def __init__(
        self,
        api: Api,
        runs: Informer,
        pods: Informer,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.api = api
        self.runs = runs
        self.pods = pods
        self.settings = settings
        self.metrics = metrics
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._event_slots = asyncio.Semaphore(4)
        self.signing = SigningSecrets(api, settings)  # signing (issue 13): per-run key Secret

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def reconcile(self, key: str) -> float | None:
        """Returns seconds until the key should be looked at again (None: only on the next event)."""
        namespace, name = key.split("/", 1)
        raw = self.runs.get(namespace, name)
        facts: Facts | None = None
        for _ in range(MAX_PASSES):
            if raw is None:
                return None
            try:
                run = CustomRun.model_validate(raw)
            except ValidationError as err:
                log.warning(
                    "Skipped malformed CustomRun",
                    extra={"fields": {"namespace": namespace, "name": name, "error": str(err)[:500]}},
                )
                return None
            if not run.is_ours:
                return None
            attempt = len(run.status.retries_status) + 1
            pod_name = naming.pod_name(name, attempt)
            pod = self.pods.get(namespace, pod_name)
            decision = decide(run, pod, self.now(), self.settings, facts)
            if decision.needs_facts:
                facts = await self.gather_facts(run)
                decision = decide(run, pod, self.now(), self.settings, facts)
            if decision.create_pod is not None:
                await self.signing.prepare(run, decision.create_pod)  # signing (issue 13)
                created = await self._create_pod(decision.create_pod)
                if isinstance(created, str):  # rejected by admission: decide again knowing that
                    facts = dataclasses.replace(facts or Facts(), pod_rejected=created)
                    continue
                if created is None:  # it already exists: adopt it and decide again
                    existing = await self.api.get_pod(namespace, pod_name)
                    if existing is not None:
                        self.pods.update(existing)
                    continue
                self.pods.update(created)
            if decision.delete_pod:
                await self.api.delete_pod(namespace, decision.delete_pod)
            if decision.status is not None:
                patch = merge_patch(raw.get("status") or {}, decision.status)
                if patch:
                    try:
                        updated = await self.api.patch_customrun_status(
                            namespace,
                            name,
                            {
                                "metadata": {"resourceVersion": raw["metadata"]["resourceVersion"]},
                                "status": patch,
                            },
                        )
                    except ApiError as err:
                        if err.conflict:  # someone wrote in between: read again and recompute
                            raw = await self._reread(namespace, name)
                            continue
                        if err.not_found:
                            return None
                        raise
                    self.metrics.status_updates.inc()
                    self.runs.update(updated)
                    raw = updated
            await self._after(run, decision)
            return decision.requeue_after
        return 1.0  # still contended after several passes: try again soon

    async def _reread(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            fresh = await self.api.get_customrun(namespace, name)
        except ApiError as err:
            if err.not_found:
                self.runs.forget(namespace, name)
                return None
            raise
        self.runs.update(fresh)
        return fresh

    async def _create_pod(self, manifest: dict[str, Any]) -> dict[str, Any] | str | None:
        """The created pod; None if it exists already; the message when admission refused it."""
        try:
            return await self.api.create_pod(manifest)
        except ApiError as err:
            if err.conflict:
                return None
            if err.status in (403, 422) or (err.status == 400 and "forbidden" in err.message.lower()):
                return err.message
            raise

    async def gather_facts(self, run: CustomRun) -> Facts:
        ns = run.metadata.namespace
        pvcs: dict[str, PvcInfo | None] = {}
        for claim in workspace_claims(run):
            obj = await self.api.get_pvc(ns, claim)
            pvcs[claim] = None if obj is None else await self._pvc_info(obj)
        params = {p.name: p.value for p in run.spec.params}
        defaults: dict[str, Any] | None = None
        missing = False
        ref = run.spec.custom_ref
        if ref is not None and ref.name:
            obj = await self.api.get_defaults(ns, ref.name)
            if obj is None:
                missing = True
            else:
                defaults = defaults_from_spec(obj.get("spec") or {})

        def named(param: str) -> Any:
            return params.get(param) or (defaults or {}).get(param)

        secret_state = await _key_state(self.api.get_secret, ns, named("registry-secret"), AUTH_KEYS)
        ca_state = await _key_state(self.api.get_configmap, ns, named("ca-bundle"), CA_KEYS)
        # registries issue: the explicit Secret and the ServiceAccount's credentials, in precedence order
        explicit = named("registry-secret")
        sa = self.settings.pod_service_account or run.spec.service_account_name or "default"
        creds = await credential_secrets(
            self.api,
            ns,
            explicit.strip() if isinstance(explicit, str) and secret_state in AUTH_KEYS else None,
            sa,
        )
        return Facts(
            pvcs=pvcs,
            secret=secret_state,
            ca_bundle=ca_state,
            defaults=defaults,
            defaults_missing=missing,
            credentials=creds,
        )

    async def _pvc_info(self, pvc: dict[str, Any]) -> PvcInfo:
        meta, spec = pvc.get("metadata") or {}, pvc.get("spec") or {}
        modes = tuple((pvc.get("status") or {}).get("accessModes") or spec.get("accessModes") or ())
        node = (meta.get("annotations") or {}).get("volume.kubernetes.io/selected-node")
        if not node and spec.get("volumeName"):
            try:
                pv = await self.api.get_pv(spec["volumeName"])
            except ApiError as err:
                if err.status != 403:  # PV read is optional (cluster-scoped); without it we just don't pin
                    raise
                pv = None
            node = _pv_node(pv) if pv else None
        return PvcInfo(name=meta.get("name", ""), access_modes=modes, node=node)

    async def _after(self, run: CustomRun, decision: Decision) -> None:
        fields = {
            "namespace": run.metadata.namespace,
            "name": run.metadata.name,
            "attempt": decision.attempt,
            "pod": decision.pod_name,
            "reason": decision.reason,
        }
        if decision.log:
            log.info(decision.log, extra={"fields": fields})
        if decision.eviction:
            self.metrics.evictions.labels(mode=decision.mode or "unknown").inc()
        out = decision.outcome
        if out is not None:  # signing (issue 13): the run is over, its copy of the key goes
            await self.signing.cleanup(run, run_asks_to_sign(run, self.settings))
            self.metrics.runs.labels(outcome=out.outcome, reason=out.reason, mode=out.mode).inc()
            self.metrics.run_duration.labels(outcome=out.outcome, mode=out.mode).observe(out.duration_seconds)
            if out.bytes_pushed:
                self.metrics.bytes_pushed.labels(mode=out.mode).inc(out.bytes_pushed)
        if decision.events:
            # events are best effort and must not delay the next status write: record them off the hot path
            raw = run.model_dump(by_alias=True, exclude_none=True)
            task = asyncio.create_task(self._record(raw, decision, fields))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)

    async def _record(self, raw: dict[str, Any], decision: Decision, fields: dict[str, Any]) -> None:
        async with self._event_slots:
            for event in decision.events:
                try:
                    await self.api.create_event(raw, event.type, event.reason, event.message, COMPONENT)
                except ApiError as err:
                    log.warning("Event not recorded", extra={"fields": {**fields, "error": str(err)}})


def _pv_node(pv: dict[str, Any]) -> str | None:
    terms = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    ) or []
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if (
                expr.get("key") == "kubernetes.io/hostname"
                and expr.get("operator") == "In"
                and expr.get("values")
            ):
                return str(expr["values"][0])
    return None


async def _key_state(
    get: Callable[[str, str], Awaitable[dict[str, Any] | None]], ns: str, name: Any, keys: tuple[str, ...]
) -> str | None:
    """Which of `keys` the Secret/ConfigMap `name` holds: the first one present, "nokey" or "missing";
    None when no valid name was given (the params check reports a bad one as InvalidParams)."""
    if not isinstance(name, str) or not is_object_name(name.strip()):
        return None
    obj = await get(ns, name.strip())
    if obj is None:
        return "missing"
    present = set(obj.get("data") or {}) | set(obj.get("binaryData") or {})
    return next((k for k in keys if k in present), "nokey")
