"""The thin applier: observe (the CustomRun, its pod, the lookups a plan needs), ask the pure
`logic.decision.decide`, apply its Decision. It branches only on the effects' outcomes (409, 403, 404)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from controller.kube.client import ApiError
from controller.kube.credentials import credential_secrets
from controller.kube.signing import SigningSecrets
from controller.logic import naming
from controller.logic.decision import Decision, decide
from controller.logic.malformed import decide_malformed, pod_name_of
from controller.logic.params import defaults_from_spec, raw_params
from controller.logic.patch import merge_patch
from controller.logic.pod import AUTH_KEYS, CA_KEYS, CONTAINER, Facts, PvcInfo, workspace_claims
from controller.logic.refusals import Refusal, classify
from controller.logic.signing import run_asks_to_sign
from controller.model.customrun import CustomRun, problems, raw_is_ours
from controller.model.params import is_object_name
from controller.obs.metrics import Metrics
from controller.settings import Settings

log = logging.getLogger("controller.reconcile")
COMPONENT = "model-image-push-controller"
MAX_PASSES = 4  # a reconcile re-decides after 409s and adoptions; bounded so a flapping object can't spin
LOG_READ_RETRY_SECONDS = 1.0  # a progress read skipped because every log slot was busy: retry after 1-2 s
Obj = dict[str, Any]


class ClusterApi(Protocol):
    """The API calls the reconciler makes (controller.kube.api.Api; a fake in the unit table)."""

    async def get_customrun(self, namespace: str, name: str) -> Obj: ...
    async def patch_customrun_status(self, namespace: str, name: str, patch: Obj) -> Obj: ...
    async def get_pod(self, namespace: str, name: str) -> Obj | None: ...
    async def create_pod(self, manifest: Obj) -> Obj: ...
    async def delete_pod(self, namespace: str, name: str) -> None: ...
    async def pod_log_tail(self, namespace: str, name: str, container: str, lines: int = 20) -> str: ...
    async def get_pvc(self, namespace: str, name: str) -> Obj | None: ...
    async def get_pv(self, name: str) -> Obj | None: ...
    async def get_secret(self, namespace: str, name: str) -> Obj | None: ...
    async def get_service_account(self, namespace: str, name: str) -> Obj | None: ...  # credentials
    async def get_configmap(self, namespace: str, name: str) -> Obj | None: ...
    async def get_defaults(self, namespace: str, name: str) -> Obj | None: ...
    async def create_event(self, run: Obj, kind: str, reason: str, message: str, component: str) -> None: ...


class Cache(Protocol):
    """An informer's cache (controller.kube.informer.Informer)."""

    def get(self, namespace: str, name: str) -> Obj | None: ...
    def update(self, obj: Obj) -> None: ...
    def forget(self, namespace: str, name: str) -> None: ...


@dataclasses.dataclass(frozen=True)
class Refused:
    """The API server refused the pod create: the Facts field that tells the next decision why."""

    fact: dict[str, str]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        api: ClusterApi,
        runs: Cache,
        pods: Cache,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.api = api
        self.runs = runs
        self.pods = pods
        self.settings = settings
        self.metrics = metrics
        self.now = clock
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._event_slots = asyncio.Semaphore(4)
        # pods/log reads for progress go through the kubelet and can be slow: a few at a time, apart from the
        # reconcile workers, so that a wave of due reads never holds every worker while new runs wait for pods
        self._log_slots = asyncio.Semaphore(max(1, settings.max_concurrent_reconciles // 4))
        self.signing = SigningSecrets(api, settings)  # type: ignore[arg-type]  # signing (issue 13)

    async def reconcile(self, key: str) -> float | None:
        """Returns seconds until the key should be looked at again (None: only on the next event)."""
        namespace, name = key.split("/", 1)
        raw = self.runs.get(namespace, name)
        facts: Facts | None = None
        for _ in range(MAX_PASSES):
            if raw is None:
                return None
            view = _view(raw)
            if isinstance(view, Malformed):
                if not raw_is_ours(raw):
                    return None
                # a run of ours we cannot read ends with a condition saying why, never in silence
                run = view.skeleton
                pod_name = pod_name_of(raw)
                pod = self.pods.get(namespace, pod_name)
                decision = decide_malformed(raw, view.problems, self.now(), pod)
            else:
                run = view
                if not run.is_ours:
                    return None
                pod_name = naming.pod_name(name, len(run.status.retries_status) + 1)
                pod = self.pods.get(namespace, pod_name)
                decision, facts = await self._decide(run, pod, facts)
            if decision.create_pod is not None:
                await self.signing.prepare(run, decision.create_pod)  # signing (issue 13)
                created = await self._create_pod(run, decision.create_pod)
                if isinstance(created, Refused):  # decide again knowing that
                    facts = dataclasses.replace(facts or Facts(), **created.fact)
                    continue
                if created is None:  # it already exists: adopt it and decide again
                    existing = await self.api.get_pod(namespace, pod_name)
                    if existing is not None:
                        self.pods.update(existing)
                    continue
                self.pods.update(created)
            for doomed in decision.delete_pods:
                await self.api.delete_pod(namespace, doomed)
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
            if decision.outcome is not None:  # signing (issue 13): the run is over, its copy of the key goes
                await self.signing.cleanup(run, run_asks_to_sign(run, self.settings))
            self._after(run, decision)
            return decision.requeue_after
        return 1.0  # still contended after several passes: try again soon

    async def _decide(
        self, run: CustomRun, pod: Obj | None, facts: Facts | None
    ) -> tuple[Decision, Facts | None]:
        """decide(), reading what it asks for (planning facts, the pod's log tail) and deciding again."""
        decision = decide(run, pod, self.now(), self.settings, facts)
        if decision.needs_facts:
            facts = await self.gather_facts(run)
            decision = decide(run, pod, self.now(), self.settings, facts)
        if decision.read_progress and pod is not None:
            if self._log_slots.locked():  # best effort: look again a little later instead of queueing here
                later = LOG_READ_RETRY_SECONDS * (1.0 + random.random())
                decision.requeue_after = min(decision.requeue_after or later, later)
                return decision, facts
            async with self._log_slots:
                tail = await self._log_tail(run, pod)
            decision = decide(run, pod, self.now(), self.settings, facts, log_tail=tail)
        return decision, facts

    async def _log_tail(self, run: CustomRun, pod: Obj) -> str:
        meta = pod.get("metadata") or {}
        try:
            return await self.api.pod_log_tail(run.metadata.namespace, meta.get("name", ""), CONTAINER)
        except ApiError as err:  # progress is best effort: no log (yet, or no pods/log) shows none
            log.debug(
                "Pod log not read", extra={"fields": {"pod": meta.get("name"), "error": str(err)[:200]}}
            )
            return ""

    async def _reread(self, namespace: str, name: str) -> Obj | None:
        try:
            fresh = await self.api.get_customrun(namespace, name)
        except ApiError as err:
            if err.not_found:
                self.runs.forget(namespace, name)
                return None
            raise
        self.runs.update(fresh)
        return fresh

    async def _create_pod(self, run: CustomRun, manifest: Obj) -> Obj | Refused | None:
        """The created pod; None if it exists already; a Refused when the API server said no."""
        try:
            return await self.api.create_pod(manifest)
        except ApiError as err:
            if err.conflict:
                return None
            refusal = classify(err.status, err.message)
            if refusal is Refusal.ADMISSION:
                return Refused({"pod_rejected": err.message})
            if refusal is Refusal.RBAC:
                # our own Role lacks a right: say so loudly (the decision also records an Event)
                fields = {
                    "namespace": run.metadata.namespace,
                    "name": run.metadata.name,
                    "error": err.message,
                }
                log.error(
                    "Controller may not create pods; fix its RBAC (config/rbac)", extra={"fields": fields}
                )
                return Refused({"create_forbidden": err.message})
            raise

    async def gather_facts(self, run: CustomRun) -> Facts:
        """Everything a plan looks up, named by the same resolved params the plan uses."""
        ns = run.metadata.namespace
        pvcs: dict[str, PvcInfo | None] = {}
        for claim in workspace_claims(run):
            obj = await self.api.get_pvc(ns, claim)
            pvcs[claim] = None if obj is None else await self._pvc_info(obj)
        defaults: dict[str, Any] | None = None
        missing = False
        ref = run.spec.custom_ref
        if ref is not None and ref.name:
            obj = await self.api.get_defaults(ns, ref.name)
            if obj is None:
                missing = True
            else:
                defaults = defaults_from_spec(obj.get("spec") or {})
        params = raw_params(run, defaults)
        secret_state = await _key_state(self.api.get_secret, ns, params.get("registry-secret"), AUTH_KEYS)
        ca_state = await _key_state(self.api.get_configmap, ns, params.get("ca-bundle"), CA_KEYS)
        # registries issue: the explicit Secret and the ServiceAccount's credentials, in precedence order
        explicit = params.get("registry-secret")
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

    async def _pvc_info(self, pvc: Obj) -> PvcInfo:
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

    def _after(self, run: CustomRun, decision: Decision) -> None:
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
        if out is not None:
            self.metrics.runs.labels(outcome=out.outcome, reason=out.reason, mode=out.mode).inc()
            self.metrics.run_duration.labels(outcome=out.outcome, mode=out.mode).observe(out.duration_seconds)
            if out.bytes_pushed:
                self.metrics.bytes_pushed.labels(mode=out.mode).inc(out.bytes_pushed)
        if decision.events:
            # events are best effort and must not delay the next status write: record them off the hot path
            task = asyncio.create_task(self._record(run, decision, fields))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)

    async def _record(self, run: CustomRun, decision: Decision, fields: dict[str, Any]) -> None:
        async with self._event_slots:
            for event in decision.events:
                await self._event(run, event.type, event.reason, event.message, fields)

    async def _event(
        self, run: CustomRun, kind: str, reason: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        try:
            raw = run.model_dump(by_alias=True, exclude_none=True)
            await self.api.create_event(raw, kind, reason, message, COMPONENT)
        except ApiError as err:
            log.warning("Event not recorded", extra={"fields": {**(fields or {}), "error": str(err)}})


@dataclasses.dataclass(frozen=True)
class Malformed:
    """A CustomRun whose view cannot be built: what is wrong, and a view of its metadata alone (for Events,
    logs and metrics)."""

    problems: list[str]
    skeleton: CustomRun


def _view(raw: Obj) -> CustomRun | Malformed:
    try:
        return CustomRun.model_validate(raw)
    except ValidationError as err:
        meta = raw.get("metadata") or {}
        found = problems(err)
        fields = {"namespace": meta.get("namespace"), "name": meta.get("name"), "error": "; ".join(found)}
        log.warning("Found a malformed CustomRun", extra={"fields": fields})
        skeleton = {"apiVersion": raw.get("apiVersion"), "kind": raw.get("kind"), "metadata": meta}
        return Malformed(found, CustomRun.model_validate(skeleton))


def _pv_node(pv: Obj) -> str | None:
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
    get: Callable[[str, str], Awaitable[Obj | None]], ns: str, name: Any, keys: tuple[str, ...]
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
