"""The reconcile decision, a state machine: (CustomRun, Pod | None, now, settings, facts) -> Decision.

Pure; the clock is passed in. Status follows Tekton's CustomRun contract: `Succeeded` is the first
condition; Unknown while running, True/False when done; results and completionTime when done; failed
attempts archived in retriesStatus; everything of ours under extraFields.

The params an attempt runs with are resolved once, when its pod is planned, and kept in
`extraFields.params`: a ModelImagePush defaults object edited or deleted later does not change a running
attempt. Every path that ends an attempt with its pod still running deletes that pod.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from controller.logic import naming
from controller.logic.eviction import is_storage_eviction, next_request, parse_eviction
from controller.logic.params import ParamsError, raw_params, validate_params
from controller.logic.pod import CA_KEYS, Facts, PlanError, build_pod
from controller.logic.podstatus import (
    PULL_WAITING,
    disruption_target,
    owned_by,
    pod_done,
    requested_storage,
    running_since,
    stuck_reason,
    terminated,
    waiting,
)
from controller.logic.progress import jittered, parse_progress, progress_fields, progress_text
from controller.logic.results import parse_failure, parse_success
from controller.logic.signing import signing_outcome, signing_results
from controller.logic.status import Builder, Decision, Event, Outcome, parse_ts, ts
from controller.model.customrun import CANCELLED, CustomRun
from controller.model.params import PushParams
from controller.model.quantity import format_quantity, parse_duration
from controller.model.reasons import FINAL_REASONS, Reason
from controller.settings import Settings

__all__ = ["FINAL_REASONS", "Decision", "Event", "Outcome", "decide", "ts"]


def timeout_seconds(run: CustomRun, settings: Settings) -> float | None:
    """nil -> the default (60 min); 0s -> no timeout. An unparsable value is treated as the default."""
    if run.spec.timeout is None:
        return settings.default_timeout_seconds or None
    try:
        value = parse_duration(run.spec.timeout)
    except ValueError:
        return settings.default_timeout_seconds or None
    return value or None


class _Attempt(Builder):
    """The builder plus what this decision knows about the current attempt and its pod."""

    def __init__(self, run: CustomRun, now: datetime, pod: dict[str, Any] | None, settings: Settings) -> None:
        super().__init__(run, now)
        self.settings = settings
        self.attempt = len(run.status.retries_status) + 1
        self.pod_name = naming.pod_name(run.metadata.name, self.attempt)
        self.pod = pod if pod is not None and owned_by(pod, run) else None
        self.mode = ""
        self.decision.attempt = self.attempt
        self.decision.pod_name = self.pod_name

    def stop_pod(self) -> None:
        """The attempt ends here: a pod of ours that still runs must not outlive it."""
        if self.pod is not None and not pod_done(self.pod):
            self.delete(self.pod_name)


def decide(
    run: CustomRun,
    pod: dict[str, Any] | None,
    now: datetime,
    settings: Settings,
    facts: Facts | None = None,
    log_tail: str | None = None,
) -> Decision:
    """`facts`: the cluster lookups for planning (None: not read yet); `log_tail`: the end of the running
    pod's log when the decision asked for it (`read_progress`)."""
    b = _Attempt(run, now, pod, settings)
    d = b.decision
    st = run.status
    if st.done:
        return d  # done runs are never touched again (also ignores a late cancel)

    if st.succeeded is None or not st.start_time:
        b.status["startTime"] = st.start_time or ts(now)
        b.condition("Unknown", Reason.STARTED, "The run was accepted")
        b.extra.setdefault("attempt", b.attempt)
    start = parse_ts(b.status.get("startTime")) or now
    b.mode = str(b.extra.get("mode", ""))

    # cancel: stop the pod, finish at once
    if run.spec.status == CANCELLED:
        msg = run.spec.status_message or "The CustomRun was cancelled"
        return _final(b, Reason.CANCELLED, msg, "cancelled")

    # params: the attempt's snapshot once its pod is planned; before that, resolved from the run and the
    # named ModelImagePush defaults (which the applier reads with the other facts)
    raw = b.extra.get("params")
    if not isinstance(raw, dict):
        named = run.spec.custom_ref is not None and bool(run.spec.custom_ref.name)
        if named and facts is None:
            d.needs_facts = True
            return b.finish()
        if named and facts is not None and facts.defaults_missing:
            ref = run.spec.custom_ref.name if run.spec.custom_ref else ""
            msg = f"ModelImagePush {ref!r} (customRef.name) not found in namespace {run.metadata.namespace!r}"
            return _final(b, Reason.INVALID_PARAMS, msg, "failed")
        raw = raw_params(run, dict(facts.defaults) if facts and facts.defaults else None)
    parsed = validate_params(raw)
    if isinstance(parsed, ParamsError):
        return _final(b, Reason.INVALID_PARAMS, parsed.message, "failed")
    params: PushParams = parsed
    b.mode = d.mode = params.resolved_mode
    b.extra["mode"] = b.mode

    # timeout of this attempt
    limit = timeout_seconds(run, settings)
    remaining = None
    if limit is not None:
        remaining = (start + timedelta(seconds=limit) - now).total_seconds()
        # The pod's activeDeadlineSeconds counts from its own start, so the kubelet fires after our clock;
        # when it has fired (we were down or late), its message is the one that names the cause.
        if remaining <= 0 and not (b.pod is not None and _deadline_exceeded(b.pod)):
            msg = f"Attempt {b.attempt} timed out after {run.spec.timeout or f'{limit:g}s'}"
            return _fail_attempt(b, Reason.TIMED_OUT, msg)

    if pod is not None and b.pod is None:
        # a leftover pod of an earlier CustomRun with the same name: remove it, then plan ours
        b.delete(b.pod_name)
        d.requeue_after = 1.0
        return b.finish()

    if pod is None:
        return _plan_pod(b, raw, params, facts, start, remaining)
    return _observe_pod(b, params, pod, remaining, log_tail)


def _missing(b: _Attempt, start: datetime, reason: Reason, waiting_reason: Reason, message: str) -> Decision:
    """A Secret or ConfigMap the run names is absent: it is often created by the same `kubectl apply`, a
    moment later, so wait for it (Unknown) up to the grace, then fail."""
    grace = b.settings.missing_object_grace_seconds
    left = (start + timedelta(seconds=grace) - b.now).total_seconds()
    if left <= 0:
        return _final(b, reason, message, "failed")
    b.condition("Unknown", waiting_reason, f"{message}; waiting up to {grace:g}s for it")
    # poll quickly at first (the usual case is a second apart), then back off; never past the grace
    waited = max((b.now - start).total_seconds(), 0.0)
    b.decision.requeue_after = min(left, max(1.0, min(waited / 2, 10.0)))
    return b.finish()


def _deadline_exceeded(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "DeadlineExceeded"


def _plan_pod(
    b: _Attempt,
    raw: dict[str, Any],
    params: PushParams,
    facts: Facts | None,
    start: datetime,
    remaining: float | None,
) -> Decision:
    d = b.decision
    not_before = parse_ts(b.extra.get("nextAttemptAt"))
    if not_before is not None and not_before > b.now:
        d.requeue_after = (not_before - b.now).total_seconds()
        return b.finish()
    if facts is None:
        d.needs_facts = True
        return b.finish()
    ns = b.run.metadata.namespace
    if params.registry_secret and facts.secret in ("missing", "nokey"):
        detail = "not found" if facts.secret == "missing" else "has no .dockerconfigjson or .dockercfg key"
        msg = (
            f"Secret {params.registry_secret!r} (param 'registry-secret') {detail} in namespace {ns!r}; "
            f"create it with kubectl create secret docker-registry {params.registry_secret} ..."
        )
        return _missing(b, start, Reason.MISSING_SECRET, Reason.WAITING_FOR_SECRET, msg)
    if params.ca_bundle and facts.ca_bundle in ("missing", "nokey"):
        keys = " or ".join(CA_KEYS)
        detail = "not found" if facts.ca_bundle == "missing" else f"has no {keys} key"
        msg = (
            f"ConfigMap {params.ca_bundle!r} (param 'ca-bundle') {detail} in namespace {ns!r}; create it "
            f"with kubectl create configmap {params.ca_bundle} --from-file={CA_KEYS[0]}=<PEM file> -n {ns} "
            f"(on OpenShift an empty ConfigMap labelled config.openshift.io/inject-trusted-cabundle=true "
            f"gets the cluster's trusted CAs)"
        )
        return _missing(b, start, Reason.MISSING_CA_BUNDLE, Reason.WAITING_FOR_CA_BUNDLE, msg)
    if facts.pod_rejected:
        msg = f"The API server rejected pod {b.pod_name}: {facts.pod_rejected}"
        return _final(b, Reason.POD_REJECTED, msg, "failed")
    if facts.create_forbidden:
        # the controller's own Role lacks a right: not the run's fault, and fixed without a new run, so
        # keep it Unknown and try again with backoff (1, 2, 4 ... 60 s)
        tries = int(b.extra.get("createForbidden", 0)) + 1
        b.extra["createForbidden"] = tries
        msg = (
            f"The controller may not create pod {b.pod_name} (its RBAC Role lacks a right; see config/rbac): "
            f"{facts.create_forbidden}; retrying"
        )
        b.condition("Unknown", Reason.PENDING, msg)
        d.events.append(Event("Warning", "PodCreateForbidden", msg))
        delay = float(min(2 ** (tries - 1), 60))
        d.requeue_after = delay if remaining is None else min(remaining, delay)
        return b.finish()
    override = b.extra.get("nextEphemeralStorage")
    try:
        grown = int(override) if override else None
        plan = build_pod(b.run, params, b.attempt, b.settings, facts, remaining, grown)
    except PlanError as err:
        return _final(b, err.reason, err.message, "failed")
    d.create_pod = plan.manifest
    b.extra.pop("nextAttemptAt", None)
    b.extra.pop("createForbidden", None)
    b.extra.update(
        podName=plan.name,
        attempt=b.attempt,
        mode=plan.mode,
        ephemeralStorage=format_quantity(plan.ephemeral_storage),
        params=raw,  # the snapshot this attempt runs with
    )
    b.condition("Unknown", Reason.STARTED, f"Created pod {plan.name} (attempt {b.attempt}, mode {plan.mode})")
    d.events.append(
        Event(
            "Normal",
            "Started",
            f"Created pod {plan.name} for attempt {b.attempt} (mode {plan.mode}, "
            f"ephemeral-storage {format_quantity(plan.ephemeral_storage)})",
        )
    )
    d.requeue_after = remaining
    d.log = "Created pod"
    return b.finish()


def _observe_pod(
    b: _Attempt, params: PushParams, pod: dict[str, Any], remaining: float | None, log_tail: str | None
) -> Decision:
    d = b.decision
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    name = b.pod_name
    b.extra["podName"] = name
    if phase == "Succeeded":
        result = parse_success(terminated(pod).get("message"))
        if result is None:
            msg = f"Pod {name} succeeded but left no result in its termination message"
            return _fail_attempt(b, Reason.PUSH_FAILED, msg)
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
        b.extra.pop("progress", None)
        msg = f"Pushed {result.url} ({result.size} bytes, {result.layers} layers)"
        # signing (issue 13): refs as results; a failed signing keeps the results, reason SigningFailed
        b.status["results"] += signing_results(result)
        failed = signing_outcome(result.signing_error, b.settings.require_signature)
        if failed is not None:
            status, reason = failed
            msg = f"{msg}, but signing failed: {result.signing_error}"
            outcome = "succeeded" if status == "True" else "failed"
            return _final(b, Reason(reason), msg, outcome, result.bytes_uploaded)
        return _final(b, Reason.SUCCEEDED, msg, "succeeded", result.bytes_uploaded)
    if phase == "Failed":
        reason, message = status.get("reason"), status.get("message") or ""
        if is_storage_eviction(reason, message):
            return _evicted(b, pod, message)
        if reason == "DeadlineExceeded":
            msg = f"Attempt {b.attempt} timed out: {message or 'the pod passed its activeDeadlineSeconds'}"
            return _fail_attempt(b, Reason.TIMED_OUT, msg)
        if reason == "Evicted":
            return _fail_attempt(b, Reason.POD_EVICTED, f"Pod {name} was evicted: {message}")
        disruption = disruption_target(pod)
        if disruption is not None:
            # an API eviction (kubectl drain), preemption or taint-manager deletion: the kubelet killed
            # the container (exit 137/143) and the pod carries why only in this condition
            return _fail_attempt(b, Reason.POD_EVICTED, f"Pod {name} was evicted: {disruption}")
        term = terminated(pod)
        failure = parse_failure(term.get("message"), term.get("exitCode"))
        return _fail_attempt(b, failure.reason, failure.message)
    # Pending / Running / Unknown
    wait = waiting(pod)
    stuck = stuck_reason(pod, wait, b.now, b.settings.image_pull_grace_seconds)
    if stuck:
        detail = f"{wait.get('reason')}: {wait.get('message', '')}".rstrip(": ")
        msg = f"Pod {name} could not start its container ({detail}); check the work image and pull secrets"
        return _fail_attempt(b, stuck, msg)
    d.requeue_after = remaining
    if phase == "Running":
        msg = f"Pod {name} is running (attempt {b.attempt})"
        interval = b.settings.progress_interval_seconds
        if interval > 0:
            interval = jittered(interval, name)
            # the first read comes one interval after the container started (the program prints its
            # first progress line after a couple of seconds), then at most one read per interval
            since = parse_ts((b.extra.get("progress") or {}).get("updatedAt")) or running_since(pod)
            until_due = interval if since is None else interval - (b.now - since).total_seconds()
            due = until_due <= 0
            d.read_progress = due and log_tail is None  # the applier reads the log and decides again
            seen = parse_progress(log_tail) if due and log_tail else None
            if seen is not None:
                b.extra["progress"] = progress_fields(seen, ts(b.now))
            shown = progress_text(b.extra.get("progress"))
            if shown:
                msg += f": {shown}"
            later = interval if due else max(until_due, 0.5)
            d.requeue_after = later if remaining is None else min(remaining, later)
        b.condition("Unknown", Reason.RUNNING, msg)
    else:
        detail = f": {wait.get('reason')}: {wait.get('message', '')}".rstrip(": ") if wait else ""
        b.condition("Unknown", Reason.PENDING, f"Pod {name} is pending (attempt {b.attempt}){detail}")
    if wait.get("reason") in PULL_WAITING:  # look again when the pull grace ends
        grace = b.settings.image_pull_grace_seconds
        d.requeue_after = grace if remaining is None else min(remaining, grace)
    return b.finish()


def _evicted(b: _Attempt, pod: dict[str, Any], message: str) -> Decision:
    d, settings = b.decision, b.settings
    d.eviction = True
    ev = parse_eviction(message)
    current = requested_storage(pod) or 0
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
        "pod": b.pod_name,
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
        f"Pod {b.pod_name} was evicted from node {node or '?'} for ephemeral storage "
        f"(requested {format_quantity(current) if current else '?'}; {shown}): {message.strip()} "
        f"To fix: {advice}."
    )
    d.events.append(Event("Warning", "Evicted", msg))
    used = int(b.extra.get("evictionRetries", 0))
    grows = nxt > current or ev.node_pressure
    if settings.retry_on_eviction and used < settings.eviction_retries and grows:
        b.extra["evictionRetries"] = used + 1
        note = f"retrying with ephemeral-storage {format_quantity(nxt)}"
        return _retry(b, Reason.EPHEMERAL_STORAGE_EXHAUSTED, msg, note, storage=nxt)
    return _final(b, Reason.EPHEMERAL_STORAGE_EXHAUSTED, msg, "failed")


def _fail_attempt(b: _Attempt, reason: Reason, message: str) -> Decision:
    used = len(b.run.status.retries_status) - int(b.extra.get("evictionRetries", 0))
    if reason not in FINAL_REASONS and used < b.run.spec.retries:
        left = b.run.spec.retries - used - 1
        note = f"{left} retr{'y' if left == 1 else 'ies'} left after this one"
        return _retry(b, reason, message, note)
    return _final(b, reason, message, "failed")


def _retry(b: _Attempt, reason: Reason, message: str, note: str, storage: int | None = None) -> Decision:
    """Archive this attempt into retriesStatus and start the next one (Tekton's retry contract)."""
    d, settings = b.decision, b.settings
    b.stop_pod()
    archived = copy.deepcopy(b.status)
    archived.pop("retriesStatus", None)
    archived["conditions"] = [
        {
            "type": "Succeeded",
            "status": "False",
            "reason": str(reason),
            "message": message,
            "lastTransitionTime": ts(b.now),
        }
    ]
    archived["completionTime"] = ts(b.now)
    nxt = b.attempt + 1
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
    b.condition("Unknown", Reason.RETRYING, f"Attempt {b.attempt} failed ({reason}: {message}); {note}")
    d.events.append(
        Event("Warning", "Retrying", f"Attempt {b.attempt} failed with {reason}; starting attempt {nxt}")
    )
    d.requeue_after = settings.retry_delay_seconds if settings.retry_delay_seconds > 0 else 0.0
    d.log = "Retrying"
    return b.finish()


def _final(b: _Attempt, reason: Reason, message: str, outcome: str, bytes_pushed: int = 0) -> Decision:
    d = b.decision
    b.stop_pod()
    keep = b.settings.keep_finished_pods
    if keep is not None:  # older attempts' pods beyond the newest `keep` go now
        for attempt in range(1, b.attempt - keep + 1):
            b.delete(naming.pod_name(b.run.metadata.name, attempt))
    status = "True" if outcome == "succeeded" else "False"
    b.condition(status, reason, message)
    b.status["completionTime"] = ts(b.now)
    b.status.setdefault("startTime", ts(b.now))
    b.extra.pop("progress", None)
    first = b.run.status.retries_status[0].get("startTime") if b.run.status.retries_status else None
    started = parse_ts(first) or parse_ts(b.status.get("startTime")) or b.now
    d.outcome = Outcome(
        outcome=outcome,
        reason=str(reason),
        mode=b.mode or "unknown",
        duration_seconds=max(0.0, (b.now - started).total_seconds()),
        bytes_pushed=bytes_pushed,
    )
    kind = "Normal" if outcome == "succeeded" else "Warning"
    event_reason = {"succeeded": "Succeeded", "cancelled": "Cancelled"}.get(outcome, "Failed")
    d.events.append(Event(kind, event_reason, f"{reason}: {message}"[:1000]))
    d.requeue_after = None
    d.log = "Finished run"
    return b.finish()
