import json
from datetime import timedelta
from typing import Any

import pytest

from controller.logic.decision import FINAL_REASONS, decide, ts
from controller.logic.pod import Facts, PvcInfo
from controller.model.customrun import CustomRun
from controller.settings import Settings
from tests.unit.controller.helpers import NOW, pod, run, run_dict, terminated

SETTINGS = Settings(leader_election=False, retry_on_eviction=True, compat_storage_ceiling="1Gi")
FACTS = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",))}, secret="ok")
OK_RESULT = json.dumps(
    {
        "image": "127.0.0.1:5000/acme/m:v1",
        "digest": "sha256:" + "a" * 64,
        "url": "127.0.0.1:5000/acme/m@sha256:" + "a" * 64,
        "size": 1234,
        "layers": 3,
        "bytes_uploaded": 1000,
        "bytes_skipped": 234,
        "seconds": 1.5,
    }
)


def running_status(attempt: int = 1, start: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Succeeded",
                "status": "Unknown",
                "reason": "Running",
                "message": "Pod push-1-push-1 is running (attempt 1)",
                "lastTransitionTime": ts(NOW),
            }
        ],
        "startTime": start or ts(NOW - timedelta(seconds=10)),
        "extraFields": {"attempt": attempt, "mode": "build", "podName": f"push-1-push-{attempt}", **extra},
    }


def started(params: dict[str, Any] | None = None, **kw: Any) -> CustomRun:
    return run(params, status=kw.pop("status", running_status()), **kw)


def cond(status: dict[str, Any]) -> dict[str, Any]:
    assert status["conditions"][0]["type"] == "Succeeded"
    return status["conditions"][0]


def test_first_sight_without_facts_asks_for_them_and_marks_started() -> None:
    d = decide(run(), None, NOW, SETTINGS)
    assert d.needs_facts and d.create_pod is None
    assert d.status is not None
    assert cond(d.status)["status"] == "Unknown" and cond(d.status)["reason"] == "Started"
    assert d.status["startTime"] == ts(NOW)


def test_first_sight_with_facts_creates_pod() -> None:
    d = decide(run(), None, NOW, SETTINGS, FACTS)
    assert d.create_pod is not None and d.create_pod["metadata"]["name"] == "push-1-push-1"
    assert d.create_pod["spec"]["activeDeadlineSeconds"] == 3600
    assert d.status is not None and d.status["extraFields"]["podName"] == "push-1-push-1"
    assert d.status["extraFields"]["ephemeralStorage"] == "256Mi"
    assert cond(d.status)["reason"] == "Started"
    assert [e.reason for e in d.events] == ["Started"]
    assert d.requeue_after == 3600


def test_invalid_params_fail_without_pod() -> None:
    d = decide(run({"source": "dir:///workspace/model", "image": "x", "mode": "fast"}), None, NOW, SETTINGS)
    assert d.create_pod is None and d.status is not None
    c = cond(d.status)
    assert (c["status"], c["reason"]) == ("False", "InvalidParams")
    assert "'mode'" in c["message"] and "'fast'" in c["message"] and "'image'" in c["message"]
    assert d.status["completionTime"] == ts(NOW) and d.status["startTime"] == ts(NOW)
    assert d.outcome is not None and d.outcome.outcome == "failed"


def test_unchanged_running_pod_writes_nothing() -> None:
    r = started()
    d = decide(r, pod("Running"), NOW, SETTINGS.model_copy(update={"progress_interval_seconds": 0}))
    assert d.status is None and d.create_pod is None
    assert d.requeue_after == pytest.approx(3590)


def test_pending_to_running_updates_reason() -> None:
    r = started(
        status={
            **running_status(),
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Started"}],
        }
    )
    d = decide(r, pod("Running"), NOW, SETTINGS)
    assert d.status is not None and cond(d.status)["reason"] == "Running"


def test_succeeded_sets_results() -> None:
    d = decide(started(), pod("Succeeded", **terminated(0, OK_RESULT)), NOW, SETTINGS)
    assert d.status is not None
    c = cond(d.status)
    assert (c["status"], c["reason"]) == ("True", "Succeeded")
    assert d.status["results"] == [
        {"name": "IMAGE_DIGEST", "value": "sha256:" + "a" * 64},
        {"name": "IMAGE_URL", "value": "127.0.0.1:5000/acme/m@sha256:" + "a" * 64},
        {"name": "IMAGE_SIZE", "value": "1234"},
        {"name": "LAYERS", "value": "3"},
    ]
    assert d.status["completionTime"] == ts(NOW)
    assert d.status["extraFields"]["bytesUploaded"] == 1000
    assert d.outcome is not None and d.outcome.bytes_pushed == 1000 and d.outcome.duration_seconds == 10


def test_succeeded_without_result_fails() -> None:
    d = decide(started(), pod("Succeeded", **terminated(0, "")), NOW, SETTINGS)
    assert d.status is not None and cond(d.status)["reason"] == "PushFailed"


@pytest.mark.parametrize(
    ("exit_code", "message", "reason"),
    [
        (4, '{"error": {"kind": "registry", "message": "PUT blob: 500 after 5 retries"}}', "PushFailed"),
        (
            5,
            '{"error": {"kind": "unreachable", "message": "GET /v2/ on r:1 answered 503 5 times"}}',
            "RegistryUnreachable",
        ),
        (
            5,
            '{"error": {"kind": "unreachable", "message": "TLS certificate of r:1 not trusted (x)"}}',
            "RegistryUnreachable",
        ),
        # the kind decides, never words in the message
        (4, '{"error": {"kind": "registry", "message": "blob unreachable: timed out"}}', "PushFailed"),
        (5, "killed before writing a result", "RegistryUnreachable"),
        (3, '{"error": {"kind": "auth", "message": "401 from 127.0.0.1:5000"}}', "AuthenticationFailed"),
        (
            2,
            '{"error": {"kind": "invalid-input", "message": "--context /workspace/x: no such dir"}}',
            "InvalidParams",
        ),
        (1, '{"error": {"kind": "internal", "message": "boom"}}', "PushFailed"),
        (3, "Traceback ...", "AuthenticationFailed"),
        (137, "", "PushFailed"),
    ],
)
def test_failed_pod_reasons(exit_code: int, message: str, reason: str) -> None:
    d = decide(started(), pod("Failed", **terminated(exit_code, message)), NOW, SETTINGS)
    assert d.status is not None
    c = cond(d.status)
    assert (c["status"], c["reason"]) == ("False", reason)
    assert d.outcome is not None and d.outcome.reason == reason


def test_retries_archive_then_next_attempt() -> None:
    r = started(retries=2)
    failed = pod("Failed", **terminated(4, '{"error": {"kind": "registry", "message": "500"}}'))
    d = decide(r, failed, NOW, SETTINGS)
    assert d.status is not None and d.outcome is None
    assert cond(d.status)["status"] == "Unknown" and cond(d.status)["reason"] == "Retrying"
    assert len(d.status["retriesStatus"]) == 1
    archived = d.status["retriesStatus"][0]
    assert (
        archived["conditions"][0]["status"] == "False" and archived["conditions"][0]["reason"] == "PushFailed"
    )
    assert d.status["extraFields"]["attempt"] == 2 and d.status["startTime"] == ts(NOW)
    assert d.requeue_after == 0
    # next pass: no pod for attempt 2 yet -> creates push-1-push-2
    r2 = CustomRun.model_validate({**run_dict(retries=2), "status": d.status})
    d2 = decide(r2, None, NOW, SETTINGS, FACTS)
    assert d2.create_pod is not None and d2.create_pod["metadata"]["name"] == "push-1-push-2"
    assert d2.create_pod["metadata"]["labels"]["modelpush.dev/attempt"] == "2"


def test_retries_exhausted_fail() -> None:
    status = running_status(attempt=3)
    status["retriesStatus"] = [{"conditions": [{"type": "Succeeded", "status": "False"}]}] * 2
    r = run(status=status, retries=2)
    failed = pod(
        "Failed", name="push-1-push-3", **terminated(4, '{"error": {"kind": "registry", "message": "500"}}')
    )
    d = decide(r, failed, NOW, SETTINGS)
    assert d.status is not None and cond(d.status)["status"] == "False"
    assert len(d.status["retriesStatus"]) == 2


def test_invalid_input_from_pod_is_not_retried() -> None:
    failed = pod("Failed", **terminated(2, '{"error": {"kind": "invalid-input", "message": "bad"}}'))
    d = decide(started(retries=3), failed, NOW, SETTINGS)
    assert d.status is not None and cond(d.status)["status"] == "False"


def test_retry_delay_waits_before_next_pod() -> None:
    s = SETTINGS.model_copy(update={"retry_delay_seconds": 5.0})
    failed = pod("Failed", **terminated(4, '{"error": {"kind": "registry", "message": "500"}}'))
    d = decide(started(retries=1), failed, NOW, s)
    assert d.requeue_after == 5.0 and d.status is not None
    r2 = CustomRun.model_validate({**run_dict(retries=1), "status": d.status})
    d2 = decide(r2, None, NOW + timedelta(seconds=2), s, FACTS)
    assert d2.create_pod is None and d2.requeue_after == pytest.approx(3)
    d3 = decide(r2, None, NOW + timedelta(seconds=6), s, FACTS)
    assert d3.create_pod is not None and "nextAttemptAt" not in d3.status["extraFields"]


EVICT_LIMIT = "Pod ephemeral local storage usage exceeds the total limit of containers 64Mi."
EVICT_NODE = (
    "The node was low on resource: ephemeral-storage. Threshold quantity: 25Mi, available: 10Mi. "
    "Container push was using 70312Ki, request is 10Mi, has larger consumption of ephemeral-storage."
)


def test_eviction_retry_with_grown_request() -> None:
    evicted = pod("Failed", reason="Evicted", message=EVICT_LIMIT)
    d = decide(started(), evicted, NOW, SETTINGS)
    assert d.eviction and d.status is not None
    assert cond(d.status)["reason"] == "Retrying"
    archived = d.status["retriesStatus"][0]["conditions"][0]
    assert archived["reason"] == "EphemeralStorageExhausted"
    assert "64Mi" in archived["message"] and "ephemeral-storage" in archived["message"]
    assert d.status["extraFields"]["nextEphemeralStorage"] == 96 * 1024**2
    assert d.status["extraFields"]["evictionRetries"] == 1
    assert d.status["extraFields"]["eviction"]["limit"] == "64Mi"
    r2 = CustomRun.model_validate({**run_dict(), "status": d.status})
    d2 = decide(r2, None, NOW, SETTINGS, FACTS)
    assert d2.create_pod is not None
    assert d2.create_pod["spec"]["containers"][0]["resources"]["limits"]["ephemeral-storage"] == "96Mi"
    # second eviction: retries for eviction are used up and spec.retries is 0 -> final, with figures
    ev2 = pod("Failed", name="push-1-push-2", reason="Evicted", message=EVICT_NODE)
    d3 = decide(CustomRun.model_validate({**run_dict(), "status": d2.status}), ev2, NOW, SETTINGS)
    c = cond(d3.status)
    assert (c["status"], c["reason"]) == ("False", "EphemeralStorageExhausted")
    assert "70312Ki" in c["message"] or "usage 70312Ki" in c["message"]
    assert d3.status["extraFields"]["eviction"]["usage"] == "70312Ki"
    assert d3.status["extraFields"]["eviction"]["suggested"] == "103Mi"


def test_eviction_without_retry_setting_fails() -> None:
    s = SETTINGS.model_copy(update={"retry_on_eviction": False})
    d = decide(started(), pod("Failed", reason="Evicted", message=EVICT_LIMIT), NOW, s)
    c = cond(d.status)
    assert (c["status"], c["reason"]) == ("False", "EphemeralStorageExhausted")
    assert "raise the 'ephemeral-storage' param" in c["message"]


def test_api_eviction_is_pod_evicted_not_push_failed() -> None:
    """kubectl drain: the pod ends Failed with the container killed, its cause only in DisruptionTarget
    (the status a real API eviction left on a work pod, tests/e2e/test_reasons.py)."""
    gone = pod(
        "Failed",
        conditions=[
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
            }
        ],
        **terminated(137, ""),
    )
    c = cond(decide(started(), gone, NOW, SETTINGS).status)
    assert (c["status"], c["reason"]) == ("False", "PodEvicted")
    assert c["message"] == "Pod push-1-push-1 was evicted: EvictionByEvictionAPI: Eviction API: evicting"


def test_eviction_at_ceiling_is_not_retried() -> None:
    s = SETTINGS.model_copy(update={"compat_storage_ceiling": 64 * 1024**2})
    d = decide(started(), pod("Failed", reason="Evicted", message=EVICT_LIMIT), NOW, s)
    assert cond(d.status)["status"] == "False"


def test_cancel_deletes_pod() -> None:
    body = run_dict(status=running_status())
    body["spec"]["status"] = "RunCancelled"
    d = decide(CustomRun.model_validate(body), pod("Running"), NOW, SETTINGS)
    assert d.delete_pods == ["push-1-push-1"]
    c = cond(d.status)
    assert (c["status"], c["reason"]) == ("False", "CustomRunCancelled")
    assert d.status["completionTime"] == ts(NOW)


def test_cancel_ignored_when_done() -> None:
    done = running_status()
    done["conditions"] = [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]
    body = run_dict(status=done)
    body["spec"]["status"] = "RunCancelled"
    d = decide(CustomRun.model_validate(body), pod("Succeeded"), NOW, SETTINGS)
    assert d.status is None and not d.delete_pods


@pytest.mark.parametrize(
    ("timeout", "age", "timed_out"),
    [(None, 3599, False), (None, 3601, True), ("10s", 11, True), ("10s", 9, False), ("0s", 10**6, False)],
)
def test_timeout(timeout: str | None, age: int, timed_out: bool) -> None:
    kw = {"timeout": timeout} if timeout else {}
    r = run(status=running_status(start=ts(NOW - timedelta(seconds=age))), **kw)
    d = decide(r, pod("Running"), NOW, SETTINGS)
    if timed_out:
        assert d.delete_pods == ["push-1-push-1"]
        c = cond(d.status)
        assert (c["status"], c["reason"]) == ("False", "CustomRunTimedOut")
    else:
        assert not d.delete_pods and (d.status is None or cond(d.status)["status"] == "Unknown")


def test_pod_deadline_exceeded_is_timeout() -> None:
    d = decide(
        started(), pod("Failed", reason="DeadlineExceeded", message="Pod was active too long"), NOW, SETTINGS
    )
    assert cond(d.status)["reason"] == "CustomRunTimedOut"


@pytest.mark.parametrize(
    ("facts", "params", "reason", "needle"),
    [
        (Facts(pvcs=FACTS.pvcs, secret="missing"), {"registry-secret": "creds"}, "MissingSecret", "'creds'"),
        (
            Facts(pvcs=FACTS.pvcs, secret="nokey"),
            {"registry-secret": "creds"},
            "MissingSecret",
            ".dockerconfigjson",
        ),
        (Facts(pvcs=FACTS.pvcs, ca_bundle="missing"), {"ca-bundle": "my-ca"}, "MissingCABundle", "'my-ca'"),
        (
            Facts(pvcs=FACTS.pvcs, ca_bundle="missing"),
            {"ca-bundle": "my-ca"},
            "MissingCABundle",
            "kubectl create configmap my-ca --from-file=ca-bundle.crt=",
        ),
        (
            Facts(pvcs=FACTS.pvcs, ca_bundle="nokey"),
            {"ca-bundle": "my-ca"},
            "MissingCABundle",
            "has no ca-bundle.crt or ca.crt key",
        ),
        (Facts(pvcs={"model-pvc": None}), {}, "MissingWorkspace", "model-pvc"),
        (
            Facts(pvcs=FACTS.pvcs, pod_rejected="maximum ephemeral-storage usage per Container is 1Gi"),
            {},
            "PodRejected",
            "maximum ephemeral-storage",
        ),
    ],
)
def test_preflight_failures(facts: Facts, params: dict[str, Any], reason: str, needle: str) -> None:
    r = run({"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1", **params}, retries=3)
    no_grace = SETTINGS.model_copy(update={"missing_object_grace_seconds": 0})
    d = decide(r, None, NOW, no_grace, facts)
    assert d.create_pod is None
    c = cond(d.status)
    assert (c["status"], c["reason"]) == ("False", reason) and needle in c["message"]
    assert reason in FINAL_REASONS  # never retried: the cluster setup must change first
    assert not d.status.get("retriesStatus") and d.status["completionTime"]


@pytest.mark.parametrize("found", ["ca-bundle.crt", "ca.crt"])
def test_ca_bundle_found_plans_pod_with_that_key(found: str) -> None:
    r = run({"source": "dir:///workspace/model", "image": "127.0.0.1:5000/acme/m:v1", "ca-bundle": "my-ca"})
    d = decide(r, None, NOW, SETTINGS, Facts(pvcs=FACTS.pvcs, ca_bundle=found))
    assert d.create_pod is not None
    args = d.create_pod["spec"]["containers"][0]["args"]
    assert args[args.index("--ca-file") + 1] == f"/etc/modelpush/ca/{found}"


def test_defaults_object_missing() -> None:
    body = run_dict({"image": "127.0.0.1:5000/acme/m:v1"})
    body["spec"]["customRef"]["name"] = "defaults"
    r = CustomRun.model_validate(body)
    assert decide(r, None, NOW, SETTINGS).needs_facts
    d = decide(r, None, NOW, SETTINGS, Facts(defaults_missing=True))
    assert cond(d.status)["reason"] == "InvalidParams" and "'defaults'" in cond(d.status)["message"]
    facts = Facts(pvcs=FACTS.pvcs, defaults={"source": "dir:///workspace/model"})
    d2 = decide(r, None, NOW, SETTINGS, facts)
    assert d2.create_pod is not None
    # later passes (pod running) use the params snapshot taken when the pod was planned: the defaults
    # object may be edited or deleted meanwhile without touching the running attempt
    assert d2.status["extraFields"]["params"] == {
        "source": "dir:///workspace/model",
        "image": "127.0.0.1:5000/acme/m:v1",
    }
    r2 = CustomRun.model_validate({**body, "status": d2.status})
    d3 = decide(r2, pod("Running"), NOW, SETTINGS, Facts(defaults_missing=True))
    assert not d3.needs_facts and not d3.delete_pods
    assert d3.status is not None and cond(d3.status)["reason"] == "Running"
    d3 = decide(r2, pod("Running"), NOW, SETTINGS, facts)
    assert cond(d3.status)["reason"] == "Running"


def test_foreign_pod_with_same_name_is_deleted() -> None:
    d = decide(started(), pod("Running", uid="other"), NOW, SETTINGS)
    assert d.delete_pods == ["push-1-push-1"] and d.create_pod is None


def test_succeeded_is_first_condition_and_others_kept() -> None:
    status = running_status()
    status["conditions"].append({"type": "Other", "status": "True"})
    d = decide(run(status=status), pod("Succeeded", **terminated(0, OK_RESULT)), NOW, SETTINGS)
    assert [c["type"] for c in d.status["conditions"]] == ["Succeeded", "Other"]


def test_last_transition_time_kept_when_unchanged() -> None:
    status = running_status()
    status["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    status["conditions"][0]["message"] = "old"
    d = decide(run(status=status), pod("Running"), NOW, SETTINGS)
    assert d.status is not None and cond(d.status)["lastTransitionTime"] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("reason", "age", "expected"),
    [
        ("ErrImagePull", 10, None),
        ("ErrImagePull", 301, "ImagePullFailed"),
        ("ImagePullBackOff", 400, "ImagePullFailed"),
        ("InvalidImageName", 1, "PodFailed"),
        ("CreateContainerConfigError", 1, "PodFailed"),
        ("ContainerCreating", 1000, None),
    ],
)
def test_stuck_pending_pod(reason: str, age: int, expected: str | None) -> None:
    p = pod(
        "Pending",
        containerStatuses=[{"name": "push", "state": {"waiting": {"reason": reason, "message": "m"}}}],
    )
    p["metadata"]["creationTimestamp"] = ts(NOW - timedelta(seconds=age))
    d = decide(started(), p, NOW, SETTINGS)
    if expected is None:
        assert not d.delete_pods and (d.status is None or cond(d.status)["status"] == "Unknown")
    else:
        assert d.delete_pods == ["push-1-push-1"]
        c = cond(d.status)
        assert (c["status"], c["reason"]) == ("False", expected) and reason in c["message"]
