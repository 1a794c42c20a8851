"""The reconcile decision: (CustomRun, Pod | None, now, settings, facts) -> Decision.

Pure; the clock is passed in.

Status follows Tekton's CustomRun contract: `Succeeded` is the first condition; Unknown while running,
True/False when done; results and completionTime when done; failed attempts archived in retriesStatus;
everything of ours under extraFields.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.logic import naming
from controller.logic.eviction import is_storage_eviction, next_request, parse_eviction
from controller.logic.params import ParamsError, raw_params, validate_params
from controller.logic.pod import CA_KEYS, CONTAINER, Facts, PlanError, build_pod
from controller.logic.results import parse_failure, parse_success
from controller.logic.signing import signing_outcome, signing_results
from controller.model.customrun import CANCELLED, CustomRun
from controller.model.params import PushParams
from controller.model.quantity import format_quantity, parse_duration
from controller.settings import Settings

# reasons that no retry can fix: the input or the cluster setup must change first
FINAL_REASONS = {
    "InvalidParams",
    "MissingSecret",
    "MissingCABundle",
    "MissingWorkspace",
    "PodRejected",
    "CustomRunCancelled",
}


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """A run that just finished (for metrics)."""

    outcome: str  # succeeded | failed | cancelled
    reason: str
    mode: str
    duration_seconds: float
    bytes_pushed: int = 0


@dataclass
class Decision:
    status: dict[str, Any] | None = None  # the whole new status, only when it changed
    create_pod: dict[str, Any] | None = None
    delete_pod: str | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    outcome: Outcome | None = None
    eviction: bool = False
    needs_facts: bool = False  # a pod must be planned: gather Facts and decide again
    attempt: int = 0
    mode: str = ""
    pod_name: str | None = None
    reason: str | None = None
    log: str = ""


def ts(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None


def timeout_seconds(run: CustomRun, settings: Settings) -> float | None:
    """nil -> the default (60 min); 0s -> no timeout. An unparsable value is treated as the default."""
    if run.spec.timeout is None:
        return settings.default_timeout_seconds or None
    try:
        value = parse_duration(run.spec.timeout)
    except ValueError:
        return settings.default_timeout_seconds or None
    return value or None


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return ((cs.get("state") or {}).get("terminated")) or (
                (cs.get("lastState") or {}).get("terminated") or {}
            )
    return {}


def _waiting(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("waiting") or {}
    return {}


# container waiting reasons that never heal by themselves, and those the kubelet retries (with a grace)
_FATAL_WAITING = {"InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
_PULL_WAITING = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}


def _stuck_reason(
    pod: dict[str, Any], waiting: dict[str, Any], now: datetime, settings: Settings
) -> str | None:
    reason = waiting.get("reason")
    if reason in _FATAL_WAITING:
        return "PodFailed"
    if reason in _PULL_WAITING:
        created = parse_ts((pod.get("metadata") or {}).get("creationTimestamp"))
        if created is not None and (now - created).total_seconds() >= settings.image_pull_grace_seconds:
            return "ImagePullFailed"
    return None


def _requested_storage(pod: dict[str, Any]) -> int | None:
    from controller.model.quantity import parse_quantity

    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == CONTAINER:
            value = ((c.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
            if value:
                try:
                    return parse_quantity(str(value))
                except ValueError:
                    return None
    return None


class _Builder:
    """Accumulates the new status for one decision."""

    def __init__(self, run: CustomRun, now: datetime) -> None:
        self.run = run
        self.now = now
        self.old = run.status.model_dump(by_alias=True, exclude_none=True)
        self.status: dict[str, Any] = copy.deepcopy(self.old)
        self.status.setdefault("extraFields", {})
        self.decision = Decision()

    @property
    def extra(self) -> dict[str, Any]:
        return self.status["extraFields"]

    def condition(self, status: str, reason: str, message: str) -> None:
        conds = [c for c in self.status.get("conditions", []) if c.get("type") != "Succeeded"]
        prev = next((c for c in self.status.get("conditions", []) if c.get("type") == "Succeeded"), None)
        changed = prev is None or prev.get("status") != status or prev.get("reason") != reason
        ltt = ts(self.now) if changed or not prev.get("lastTransitionTime") else prev["lastTransitionTime"]
        cond = {"type": "Succeeded", "status": status, "reason": reason, "message": message}
        cond["lastTransitionTime"] = ltt
        self.status["conditions"] = [cond, *conds]
        self.decision.reason = reason

    def finish(self) -> Decision:
        if self.status != self.old:
            self.decision.status = self.status
        return self.decision


def decide(
    run: CustomRun,
    pod: dict[str, Any] | None,
    now: datetime,
    settings: Settings,
    facts: Facts | None = None,
) -> Decision:
    b = _Builder(run, now)
    d = b.decision
    st = run.status
    if st.done:
        return d  # done runs are never touched again (also ignores a late cancel)

    attempt = len(st.retries_status) + 1
    d.attempt = attempt
    d.pod_name = naming.pod_name(run.metadata.name, attempt)
    first_sight = st.succeeded is None or not st.start_time
    if first_sight:
        b.status["startTime"] = st.start_time or ts(now)
        b.condition("Unknown", "Started", "The run was accepted")
        b.extra.setdefault("attempt", attempt)
    start = parse_ts(b.status.get("startTime")) or now
    mode = str(b.extra.get("mode", ""))
    pod_ours = pod is not None and _owned_by(pod, run)

    # cancel: stop the pod, finish at once
    if run.spec.status == CANCELLED:
        if pod is not None and pod_ours and not _pod_done(pod):
            d.delete_pod = d.pod_name
        msg = run.spec.status_message or "The CustomRun was cancelled"
        return _final(b, "CustomRunCancelled", msg, "cancelled", mode)

    # params: validated once per decision (cheap); invalid input fails before any pod exists
    # named defaults live in a ModelImagePush object: the applier reads it (with the other facts) first
    if run.spec.custom_ref is not None and run.spec.custom_ref.name and facts is None:
        d.needs_facts = True
        return b.finish()
    if facts is not None and facts.defaults_missing and run.spec.custom_ref is not None:
        ref = run.spec.custom_ref.name
        return _final(
            b,
            "InvalidParams",
            f"ModelImagePush {ref!r} (customRef.name) not found in namespace {run.metadata.namespace!r}",
            "failed",
            mode,
        )
    parsed = validate_params(raw_params(run, dict(facts.defaults) if facts and facts.defaults else None))
    if isinstance(parsed, ParamsError):
        return _final(b, "InvalidParams", parsed.message, "failed", mode)
    params: PushParams = parsed
    mode = params.resolved_mode
    b.extra["mode"] = mode
    d.mode = mode

    # timeout of this attempt
    limit = timeout_seconds(run, settings)
    remaining = None
    if limit is not None:
        remaining = (start + timedelta(seconds=limit) - now).total_seconds()
        if remaining <= 0:
            if pod is not None and pod_ours and not _pod_done(pod):
                d.delete_pod = d.pod_name
            msg = f"Attempt {attempt} timed out after {run.spec.timeout or format_timeout(limit)}"
            return _fail_attempt(b, params, settings, "CustomRunTimedOut", msg, pod)

    if pod is not None and not pod_ours:
        # a leftover pod of an earlier CustomRun with the same name: remove it, then plan ours
        d.delete_pod = d.pod_name
        d.requeue_after = 1.0
        return b.finish()

    if pod is None:
        return _plan_pod(b, params, settings, facts, attempt, remaining, limit)
    return _observe_pod(b, params, settings, pod, remaining)


def format_timeout(seconds: float) -> str:
    return f"{seconds:g}s"


def _owned_by(pod: dict[str, Any], run: CustomRun) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    if not run.metadata.uid:
        return True
    return any(r.get("uid") == run.metadata.uid for r in refs)


def _pod_done(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _plan_pod(
    b: _Builder,
    params: PushParams,
    settings: Settings,
    facts: Facts | None,
    attempt: int,
    remaining: float | None,
    limit: float | None,
) -> Decision:
    d = b.decision
    not_before = parse_ts(b.extra.get("nextAttemptAt"))
    if not_before is not None and not_before > b.now:
        d.requeue_after = (not_before - b.now).total_seconds()
        return b.finish()
    if facts is None:
        d.needs_facts = True
        return b.finish()
    if params.registry_secret and facts.secret in ("missing", "nokey"):
        ns = b.run.metadata.namespace
        detail = "not found" if facts.secret == "missing" else "has no .dockerconfigjson or .dockercfg key"
        msg = (
            f"Secret {params.registry_secret!r} (param 'registry-secret') {detail} in namespace {ns!r}; "
            f"create it with kubectl create secret docker-registry {params.registry_secret} ..."
        )
        return _final(b, "MissingSecret", msg, "failed", params.resolved_mode)
    if params.ca_bundle and facts.ca_bundle in ("missing", "nokey"):
        ns = b.run.metadata.namespace
        keys = " or ".join(CA_KEYS)
        detail = "not found" if facts.ca_bundle == "missing" else f"has no {keys} key"
        msg = (
            f"ConfigMap {params.ca_bundle!r} (param 'ca-bundle') {detail} in namespace {ns!r}; create it "
            f"with kubectl create configmap {params.ca_bundle} --from-file={CA_KEYS[0]}=<PEM file> -n {ns} "
            f"(on OpenShift an empty ConfigMap labelled config.openshift.io/inject-trusted-cabundle=true "
            f"gets the cluster's trusted CAs)"
        )
        return _final(b, "MissingCABundle", msg, "failed", params.resolved_mode)
    if facts.pod_rejected:
        msg = f"The API server rejected pod {d.pod_name}: {facts.pod_rejected}"
        return _final(b, "PodRejected", msg, "failed", params.resolved_mode)
    override = b.extra.get("nextEphemeralStorage")
    try:
        grown = int(override) if override else None
        plan = build_pod(b.run, params, attempt, settings, facts, remaining, grown)
    except PlanError as err:
        return _final(b, err.reason, err.message, "failed", params.resolved_mode)
    d.create_pod = plan.manifest
    b.extra.pop("nextAttemptAt", None)
    b.extra.update(
        podName=plan.name,
        attempt=attempt,
        mode=plan.mode,
        ephemeralStorage=format_quantity(plan.ephemeral_storage),
    )
    b.condition("Unknown", "Started", f"Created pod {plan.name} (attempt {attempt}, mode {plan.mode})")
    d.events.append(
        Event(
            "Normal",
            "Started",
            f"Created pod {plan.name} for attempt {attempt} (mode {plan.mode}, "
            f"ephemeral-storage {format_quantity(plan.ephemeral_storage)})",
        )
    )
    d.requeue_after = remaining
    d.log = "Created pod"
    return b.finish()


def _observe_pod(
    b: _Builder, params: PushParams, settings: Settings, pod: dict[str, Any], remaining: float | None
) -> Decision:
    d = b.decision
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    name = d.pod_name or ""
    b.extra["podName"] = name
    if phase == "Succeeded":
        term = _terminated(pod)
        result = parse_success(term.get("message"))
        if result is None:
            msg = f"Pod {name} succeeded but left no result in its termination message"
            return _fail_attempt(b, params, settings, "PushFailed", msg, pod)
        b.status["results"] = [
            {"name": "IMAGE_DIGEST", "value": result.digest},
            {"name": "IMAGE_URL", "value": result.url},
            {"name": "IMAGE_SIZE", "value": str(result.size)},
            {"name": "LAYERS", "value": str(result.layers)},
        ]
        if result.index_digest:  # issue 12: format both; IMAGE_DIGEST stays the runnable image
            b.status["results"].append({"name": "IMAGE_INDEX_DIGEST", "value": result.index_digest})
        b.extra.update(
            bytesUploaded=result.bytes_uploaded,
            bytesSkipped=result.bytes_skipped,
            pushSeconds=result.seconds,
        )
        msg = f"Pushed {result.url} ({result.size} bytes, {result.layers} layers)"
        # signing (issue 13): refs as results; a failed signing keeps the results, reason SigningFailed
        b.status["results"] += signing_results(result)
        failed = signing_outcome(result.signing_error, settings.require_signature)
        if failed is not None:
            status, reason = failed
            msg = f"{msg}, but signing failed: {result.signing_error}"
            outcome = "succeeded" if status == "True" else "failed"
            return _final(b, reason, msg, outcome, params.resolved_mode, result.bytes_uploaded)
        return _final(b, "Succeeded", msg, "succeeded", params.resolved_mode, result.bytes_uploaded)
    if phase == "Failed":
        reason, message = status.get("reason"), status.get("message") or ""
        if is_storage_eviction(reason, message):
            return _evicted(b, params, settings, pod, message)
        if reason == "DeadlineExceeded":
            msg = f"Attempt {d.attempt} timed out: {message or 'the pod passed its activeDeadlineSeconds'}"
            return _fail_attempt(b, params, settings, "CustomRunTimedOut", msg, pod)
        if reason == "Evicted":
            return _fail_attempt(b, params, settings, "PodEvicted", f"Pod {name} was evicted: {message}", pod)
        term = _terminated(pod)
        failure = parse_failure(term.get("message"), term.get("exitCode"))
        return _fail_attempt(b, params, settings, failure.reason, failure.message, pod)
    # Pending / Running / Unknown
    waiting = _waiting(pod)
    stuck = _stuck_reason(pod, waiting, b.now, settings)
    if stuck:
        if d.pod_name:
            d.delete_pod = d.pod_name
        detail = f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
        msg = f"Pod {name} could not start its container ({detail}); check the work image and pull secrets"
        return _fail_attempt(b, params, settings, stuck, msg, pod)
    if phase == "Running":
        b.condition("Unknown", "Running", f"Pod {name} is running (attempt {d.attempt})")
    else:
        detail = f": {waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ") if waiting else ""
        b.condition("Unknown", "Pending", f"Pod {name} is pending (attempt {d.attempt}){detail}")
    d.requeue_after = remaining
    if waiting.get("reason") in _PULL_WAITING:  # look again when the pull grace ends
        grace = settings.image_pull_grace_seconds
        d.requeue_after = grace if remaining is None else min(remaining, grace)
    return b.finish()


def _evicted(
    b: _Builder, params: PushParams, settings: Settings, pod: dict[str, Any], message: str
) -> Decision:
    d = b.decision
    d.eviction = True
    ev = parse_eviction(message)
    current = _requested_storage(pod) or 0
    nxt = next_request(ev, current, settings.eviction_growth, settings.compat_storage_ceiling)
    node = (pod.get("spec") or {}).get("nodeName") or ""
    figures = {
        k: format_quantity(v)
        for k, v in (
            ("usage", ev.usage),
            ("limit", ev.limit),
            ("threshold", ev.threshold),
            ("available", ev.available),
            ("request", ev.request),
        )
        if v is not None
    }
    b.extra["eviction"] = {
        "pod": d.pod_name,
        "node": node,
        "message": message,
        "requested": format_quantity(current) if current else "",
        "suggested": format_quantity(nxt),
        **figures,
    }
    shown = ", ".join(f"{k} {v}" for k, v in figures.items())
    advice = (
        f"raise the 'ephemeral-storage' param (e.g. to {format_quantity(nxt)}), keep buildah/skopeo storage "
        f"on the workspace PVC (param storage=workspace), or use a native mode (build/copy), which stages "
        f"nothing on the node"
    )
    msg = (
        f"Pod {d.pod_name} was evicted from node {node or '?'} for ephemeral storage "
        f"(requested {format_quantity(current) if current else '?'}; {shown}): {message.strip()} "
        f"To fix: {advice}."
    )
    d.events.append(Event("Warning", "Evicted", msg))
    used = int(b.extra.get("evictionRetries", 0))
    grows = nxt > current or ev.node_pressure
    if settings.retry_on_eviction and used < settings.eviction_retries and grows:
        b.extra["evictionRetries"] = used + 1
        return _retry(
            b,
            settings,
            "EphemeralStorageExhausted",
            msg,
            f"retrying with ephemeral-storage {format_quantity(nxt)}",
            storage=nxt,
        )
    return _fail_attempt(b, params, settings, "EphemeralStorageExhausted", msg, pod, eviction_done=True)


def _fail_attempt(
    b: _Builder,
    params: PushParams,
    settings: Settings,
    reason: str,
    message: str,
    pod: dict[str, Any] | None,
    eviction_done: bool = False,
) -> Decision:
    used = len(b.run.status.retries_status) - int(b.extra.get("evictionRetries", 0))
    if reason not in FINAL_REASONS and used < b.run.spec.retries:
        left = b.run.spec.retries - used - 1
        note = f"{left} retr{'y' if left == 1 else 'ies'} left after this one"
        return _retry(b, settings, reason, message, note)
    return _final(b, reason, message, "failed", params.resolved_mode)


def _retry(
    b: _Builder, settings: Settings, reason: str, message: str, note: str, storage: int | None = None
) -> Decision:
    """Archive this attempt into retriesStatus and start the next one (Tekton's retry contract)."""
    d = b.decision
    archived = copy.deepcopy(b.status)
    archived.pop("retriesStatus", None)
    archived["conditions"] = [
        {
            "type": "Succeeded",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": ts(b.now),
        }
    ]
    archived["completionTime"] = ts(b.now)
    nxt = d.attempt + 1
    keep = ("evictionRetries", "mode", "eviction")
    extra: dict[str, Any] = {k: v for k, v in b.extra.items() if k in keep}
    extra["attempt"] = nxt
    if storage is not None:
        extra["nextEphemeralStorage"] = storage
    elif "nextEphemeralStorage" in b.extra:
        extra["nextEphemeralStorage"] = b.extra["nextEphemeralStorage"]  # keep the grown size
    if settings.retry_delay_seconds > 0:
        extra["nextAttemptAt"] = ts(b.now + timedelta(seconds=settings.retry_delay_seconds))
    b.status = {
        "conditions": [],
        "startTime": ts(b.now),
        "retriesStatus": [*b.run.status.retries_status, archived],
        "extraFields": extra,
    }
    b.condition("Unknown", "Retrying", f"Attempt {d.attempt} failed ({reason}: {message}); {note}")
    d.events.append(
        Event("Warning", "Retrying", f"Attempt {d.attempt} failed with {reason}; starting attempt {nxt}")
    )
    d.requeue_after = settings.retry_delay_seconds if settings.retry_delay_seconds > 0 else 0.0
    d.log = "Retrying"
    return b.finish()


def _final(
    b: _Builder, reason: str, message: str, outcome: str, mode: str, bytes_pushed: int = 0
) -> Decision:
    d = b.decision
    status = "True" if outcome == "succeeded" else "False"
    b.condition(status, reason, message)
    b.status["completionTime"] = ts(b.now)
    b.status.setdefault("startTime", ts(b.now))
    first = b.run.status.retries_status[0].get("startTime") if b.run.status.retries_status else None
    started = parse_ts(first) or parse_ts(b.status.get("startTime")) or b.now
    d.outcome = Outcome(
        outcome=outcome,
        reason=reason,
        mode=mode or "unknown",
        duration_seconds=max(0.0, (b.now - started).total_seconds()),
        bytes_pushed=bytes_pushed,
    )
    kind = "Normal" if outcome == "succeeded" else "Warning"
    event_reason = {"succeeded": "Succeeded", "cancelled": "Cancelled"}.get(outcome, "Failed")
    d.events.append(Event(kind, event_reason, f"{reason}: {message}"[:1000]))
    d.requeue_after = None
    d.log = "Finished run"
    return b.finish()
