"""Tables for the hardening points of the decision and the pod plan (issue 10): params snapshot, pods never
outliving their attempt, objects created with the run, platform-assigned UIDs, the affinity assistant,
finished pods kept, digest-pinned build images, refusals and result kinds."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from controller.logic.decision import decide
from controller.logic.params import ParamsError, validate_params
from controller.logic.pod import Facts, PvcInfo, build_pod
from controller.logic.progress import Seen, jittered, progress_fields, progress_text
from controller.logic.refusals import Refusal, classify
from controller.logic.results import parse_failure
from controller.logic.status import ts
from controller.model.customrun import CustomRun
from controller.model.params import PushParams
from controller.model.reasons import FINAL_REASONS, Reason
from controller.model.result import KINDS, ErrorBody
from controller.settings import Settings
from tests.unit.controller.helpers import NOW, pod, run, run_dict

SETTINGS = Settings(leader_election=False, progress_interval_seconds=0)
FACTS = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",))}, secret=".dockerconfigjson")
IMAGE = "127.0.0.1:5000/acme/m:v1"


def cond(status: dict[str, Any]) -> dict[str, Any]:
    return status["conditions"][0]


def at(seconds: float) -> Any:
    return NOW + timedelta(seconds=seconds)


# --- 6. a Secret / CA ConfigMap created a moment after the run -------------------------------------------


@pytest.mark.parametrize(
    ("facts", "waiting", "final"),
    [
        (Facts(pvcs=FACTS.pvcs, secret="missing"), "WaitingForSecret", "MissingSecret"),
        (Facts(pvcs=FACTS.pvcs, secret="nokey"), "WaitingForSecret", "MissingSecret"),
        (Facts(pvcs=FACTS.pvcs, ca_bundle="missing"), "WaitingForCABundle", "MissingCABundle"),
    ],
)
def test_missing_object_waits_for_the_grace_then_fails(facts: Facts, waiting: str, final: str) -> None:
    params = {
        "source": "dir:///workspace/model",
        "image": IMAGE,
        "registry-secret": "creds",
        "ca-bundle": "ca",
    }
    if facts.secret is None:
        facts = Facts(pvcs=facts.pvcs, secret=".dockerconfigjson", ca_bundle=facts.ca_bundle)
    settings = SETTINGS.model_copy(update={"missing_object_grace_seconds": 30})
    first = decide(run(params), None, NOW, settings, facts)
    assert first.create_pod is None and first.outcome is None
    c = cond(first.status)
    assert (c["status"], c["reason"]) == ("Unknown", waiting) and "waiting up to 30s" in c["message"]
    assert 0 < first.requeue_after <= 30
    started = CustomRun.model_validate(run_dict(params, status=first.status))
    later = decide(started, None, at(10), settings, facts)
    assert cond(later.status)["reason"] == waiting if later.status else True
    assert later.requeue_after is not None and later.requeue_after <= 20
    # it appeared: the pod is planned
    ok = Facts(pvcs=FACTS.pvcs, secret=".dockerconfigjson", ca_bundle="ca.crt")
    assert decide(started, None, at(10), settings, ok).create_pod is not None
    # the grace passed: final, with the same actionable message
    done = decide(started, None, at(31), settings, facts)
    c = cond(done.status)
    assert (c["status"], c["reason"]) == ("False", final) and Reason(final) in FINAL_REASONS


# --- 2. the params snapshot and pods that never outlive their attempt -----------------------------------


def _named_run(status: dict[str, Any] | None = None) -> CustomRun:
    body = run_dict({"image": IMAGE}, status=status)
    body["spec"]["customRef"]["name"] = "defaults"
    return CustomRun.model_validate(body)


def test_defaults_edited_mid_run_do_not_change_the_attempt() -> None:
    planned = decide(
        _named_run(),
        None,
        NOW,
        SETTINGS,
        Facts(pvcs=FACTS.pvcs, defaults={"source": "dir:///workspace/model"}),
    )
    assert planned.create_pod is not None
    r = _named_run(planned.status)
    # the defaults object now says something invalid: the running attempt keeps its snapshot
    edited = Facts(pvcs=FACTS.pvcs, defaults={"source": "docker://elsewhere/x:1", "mode": "nonsense"})
    d = decide(r, pod("Running"), at(5), SETTINGS, edited)
    assert d.outcome is None and not d.delete_pods and cond(d.status)["reason"] == "Running"


@pytest.mark.parametrize(
    ("spec", "status_extra", "reason"),
    [
        ({"status": "RunCancelled"}, {}, "CustomRunCancelled"),
        ({"timeout": "5s"}, {}, "CustomRunTimedOut"),
        # no snapshot (e.g. a status written before this version) and the defaults object is gone
        ({}, {"customRef": "defaults"}, "InvalidParams"),
    ],
)
def test_every_final_path_deletes_a_running_pod(
    spec: dict[str, Any], status_extra: dict[str, Any], reason: str
) -> None:
    status = {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "x"}],
        "startTime": ts(NOW - timedelta(seconds=10)),
        "extraFields": {"attempt": 1, "podName": "push-1-push-1", "mode": "build"},
    }
    body = run_dict(status=status)
    body["spec"].update(spec)
    if status_extra.get("customRef"):
        body["spec"]["customRef"]["name"] = status_extra["customRef"]
    d = decide(CustomRun.model_validate(body), pod("Running"), NOW, SETTINGS, Facts(defaults_missing=True))
    assert cond(d.status)["reason"] == reason and cond(d.status)["status"] == "False"
    assert d.delete_pods == ["push-1-push-1"]
    # a finished pod is left for its logs
    d2 = decide(CustomRun.model_validate(body), pod("Failed"), NOW, SETTINGS, Facts(defaults_missing=True))
    assert "push-1-push-1" not in d2.delete_pods


# --- 10. finished attempt pods kept per run ------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "deleted"),
    [
        (None, []),
        (3, []),
        (2, ["push-1-push-1"]),
        (1, ["push-1-push-1", "push-1-push-2"]),
        (0, ["push-1-push-1", "push-1-push-2", "push-1-push-3"]),
    ],
)
def test_keep_finished_pods(keep: int | None, deleted: list[str]) -> None:
    archived = {"conditions": [{"type": "Succeeded", "status": "False", "reason": "PushFailed"}]}
    status = {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "x"}],
        "startTime": ts(NOW - timedelta(seconds=10)),
        "retriesStatus": [archived, archived],
        "extraFields": {"attempt": 3, "podName": "push-1-push-3", "mode": "build"},
    }
    r = CustomRun.model_validate(run_dict(status=status, retries=2))
    result = json.dumps({"image": IMAGE, "digest": "sha256:" + "a" * 64, "url": "u", "size": 1, "layers": 1})
    done = pod(
        "Succeeded",
        name="push-1-push-3",
        containerStatuses=[{"name": "push", "state": {"terminated": {"exitCode": 0, "message": result}}}],
    )
    d = decide(r, done, NOW, SETTINGS.model_copy(update={"keep_finished_pods": keep}))
    assert cond(d.status)["reason"] == "Succeeded"
    assert d.delete_pods == deleted


# --- 3. a digest-pinned destination cannot be built -----------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "source", "refused"),
    [
        ("build", "dir:///workspace/model", True),
        ("buildah", "dir:///workspace/model", True),
        ("copy", "docker://r:5000/a/b:1", False),
    ],
)
def test_digest_pinned_image(mode: str, source: str, refused: bool) -> None:
    p = validate_params({"source": source, "image": "r:5000/a/b@sha256:" + "c" * 64, "mode": mode})
    assert isinstance(p, ParamsError) is refused
    if refused:
        assert "param 'image'" in p.message and "tag" in p.message  # type: ignore[union-attr]


# --- 3. one kind per reason across the pod boundary -----------------------------------------------------


def test_every_kind_names_one_reason_and_exit_code() -> None:
    assert sorted(code for code, _ in KINDS.values()) == [1, 2, 3, 4, 5]
    for kind, (code, reason) in KINDS.items():
        doc = json.dumps({"error": {"kind": kind, "message": "m"}})
        assert ErrorBody(kind=kind, message="m").reason is reason  # type: ignore[arg-type]
        assert parse_failure(doc, code).reason is reason
        assert parse_failure("no document", code).reason is reason  # the exit code alone says the same


def test_unknown_kind_falls_back_to_the_exit_code() -> None:
    assert (
        parse_failure('{"error": {"kind": "martian", "message": "m"}}', 5).reason
        is Reason.REGISTRY_UNREACHABLE
    )


# --- 4. 403 from RBAC vs admission ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "refusal"),
    [
        (
            403,
            'pods is forbidden: User "system:serviceaccount:ns:ctl" cannot create resource "pods" '
            'in API group "" '
            'in the namespace "ns"',
            Refusal.RBAC,
        ),
        (
            403,
            'pods "p" is forbidden: violates PodSecurity "restricted:latest": privileged',
            Refusal.ADMISSION,
        ),
        (
            403,
            'pods "p" is forbidden: maximum ephemeral-storage usage per Container is 1Gi, but limit is 2Gi',
            Refusal.ADMISSION,
        ),
        (
            403,
            'pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1',
            Refusal.ADMISSION,
        ),
        (
            422,
            'Pod "p" is invalid: spec.containers[0].securityContext.privileged: Forbidden: '
            "disallowed by cluster policy",
            Refusal.ADMISSION,
        ),
        (500, "etcdserver: request timed out", Refusal.OTHER),
        (0, "ClientConnectorError", Refusal.OTHER),
    ],
)
def test_refusal_classification(status: int, message: str, refusal: Refusal) -> None:
    assert classify(status, message) is refusal


# --- 7. platform-assigned UIDs --------------------------------------------------------------------------


def _plan(
    settings: Settings, mode: str = "build", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    body = run_dict()
    body["metadata"]["annotations"] = annotations or {}
    p = validate_params({"source": "dir:///workspace/model", "image": IMAGE, "mode": mode})
    assert isinstance(p, PushParams)
    return build_pod(CustomRun.model_validate(body), p, 1, settings, FACTS, None).manifest


@pytest.mark.parametrize(
    ("run_as_user", "expected"),
    [(None, {}), (1000680000, {"runAsUser": 1000680000, "runAsGroup": 1000680000, "fsGroup": 1000680000})],
)
def test_no_uid_unless_set(run_as_user: int | None, expected: dict[str, int]) -> None:
    spec = _plan(SETTINGS.model_copy(update={"run_as_user": run_as_user}))["spec"]
    sc = spec["securityContext"]
    assert {k: sc[k] for k in ("runAsUser", "runAsGroup", "fsGroup") if k in sc} == expected
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    csc = spec["containers"][0]["securityContext"]
    assert csc["capabilities"] == {"drop": ["ALL"]} and csc["allowPrivilegeEscalation"] is False


def test_run_as_user_setting_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPUSH_RUN_AS_USER", "4242")
    assert Settings(leader_election=False).run_as_user == 4242
    monkeypatch.setenv("MODELPUSH_RUN_AS_USER", "")
    assert Settings(leader_election=False).run_as_user is None
    monkeypatch.delenv("MODELPUSH_RUN_AS_USER")
    assert Settings(leader_election=False).run_as_user is None


# --- 8. Tekton's affinity assistant ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, None),
        ({"pipeline.tekton.dev/affinity-assistant": ""}, None),
        (
            {"pipeline.tekton.dev/affinity-assistant": "affinity-assistant-3f2a1b"},
            {
                "podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/instance": "affinity-assistant-3f2a1b",
                                    "app.kubernetes.io/component": "affinity-assistant",
                                }
                            },
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                }
            },
        ),
    ],
)
def test_affinity_assistant_annotation(annotations: dict[str, str], expected: dict[str, Any] | None) -> None:
    assert _plan(SETTINGS, annotations=annotations)["spec"].get("affinity") == expected


def test_affinity_assistant_and_attached_volume_together() -> None:
    body = run_dict()
    body["metadata"]["annotations"] = {"pipeline.tekton.dev/affinity-assistant": "aa-1"}
    p = validate_params({"source": "dir:///workspace/model", "image": IMAGE})
    assert isinstance(p, PushParams)
    facts = Facts(pvcs={"model-pvc": PvcInfo("model-pvc", ("ReadWriteOnce",), "node-7")})
    affinity = build_pod(CustomRun.model_validate(body), p, 1, SETTINGS, facts, None).manifest["spec"][
        "affinity"
    ]
    assert set(affinity) == {"podAffinity", "nodeAffinity"}


# --- the README's tables match the code -----------------------------------------------------------------


def test_readme_reasons_table_lists_every_reason() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = text[text.index("### Failure reasons") :].split("\n\n")[1]
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    in_progress = {Reason.STARTED, Reason.PENDING, Reason.RUNNING, Reason.RETRYING}
    waiting = {Reason.WAITING_FOR_SECRET, Reason.WAITING_FOR_CA_BUNDLE}
    assert listed == {str(r) for r in Reason} - {str(r) for r in in_progress | waiting} - {"Succeeded"}
    for reason in in_progress | waiting:
        assert f"`{reason}`" in text


def test_readme_settings_table_lists_every_setting() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = text[text.index("| setting | default | meaning |") :].split("\n\n")[0]
    names = set()
    for row in re.findall(r"^\| (.+?) \|", table, re.M):
        for part in re.findall(r"`([A-Z_]+)`", row):
            names.add(part)
        # `A` / `_B` shorthand: NATIVE_CPU_REQUEST / _LIMIT
        first = re.search(r"`([A-Z_]+)`", row)
        for tail in re.findall(r"`(_[A-Z_]+)`", row):
            if first:
                names.add(first.group(1).rsplit("_", 1)[0] + tail)
    fields = {name.upper() for name in Settings.model_fields}
    missing = fields - names
    assert not missing, f"settings missing from the README: {sorted(missing)}"


# --- 9. live progress: when the log is read, what the status shows ---------------------------------------


def _running_pod(started_seconds_ago: float) -> dict[str, Any]:
    started = ts(NOW - timedelta(seconds=started_seconds_ago))
    return pod("Running", containerStatuses=[{"name": "push", "state": {"running": {"startedAt": started}}}])


def _running_run(progress: dict[str, Any] | None = None) -> CustomRun:
    extra: dict[str, Any] = {"attempt": 1, "podName": "push-1-push-1", "mode": "build"}
    if progress is not None:
        extra["progress"] = progress
    status = {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "x"}],
        "startTime": ts(NOW - timedelta(seconds=60)),
        "extraFields": extra,
    }
    return CustomRun.model_validate(run_dict(status=status))


# this pod's read interval: 10 s plus its fixed jitter (up to a fifth more, so pods don't read in lockstep)
J = jittered(10, "push-1-push-1")


def test_jitter_spreads_pods_within_a_fifth_of_the_interval() -> None:
    spread = {jittered(10, f"run-{i:04d}-push-1") for i in range(500)}
    assert min(spread) >= 10 and max(spread) <= 12 and max(spread) - min(spread) > 1.5
    assert jittered(10, "a-push-1") == jittered(10, "a-push-1")  # fixed per pod: decide stays pure


@pytest.mark.parametrize(
    ("started_ago", "updated_ago", "due", "requeue"),
    [
        (3, None, False, J - 3),  # first read one interval after the container started
        (J, None, True, J),
        (60, 4, False, J - 4),  # then one per interval
        (60, J, True, J),
        (60, 30, True, J),
    ],
)
def test_progress_read_at_most_once_per_interval(
    started_ago: float, updated_ago: float | None, due: bool, requeue: float
) -> None:
    settings = SETTINGS.model_copy(update={"progress_interval_seconds": 10})
    progress = (
        None
        if updated_ago is None
        else {"bytesTotal": 10, "updatedAt": ts(NOW - timedelta(seconds=updated_ago))}
    )
    d = decide(_running_run(progress), _running_pod(started_ago), NOW, settings)
    assert d.read_progress is due
    assert d.requeue_after == pytest.approx(requeue, abs=0.01)


def test_progress_fields_and_message_from_the_log_tail() -> None:
    settings = SETTINGS.model_copy(update={"progress_interval_seconds": 10})
    tail = "\n".join(
        [
            '{"event": "progress", "bytes_done": 1, "bytes_total": 4, "rate_bps": 1, "eta_s": 3}',
            '{"event": "retry", "method": "PATCH"}',
            json.dumps(
                {
                    "event": "progress",
                    "bytes_done": 3 * 2**30,
                    "bytes_total": 4 * 2**30,
                    "rate_bps": 2**28,
                    "eta_s": 4.2,
                }
            ),
            '{"event": "progress", "bytes_do',  # cut by limitBytes
        ]
    )
    d = decide(_running_run(), _running_pod(30), NOW, settings, log_tail=tail)
    assert not d.read_progress
    assert d.status["extraFields"]["progress"] == {
        "bytesDone": 3 * 2**30,
        "bytesTotal": 4 * 2**30,
        "percent": 75.0,
        "mibPerSecond": 256.0,
        "etaSeconds": 4,
        "updatedAt": ts(NOW),
    }
    assert (
        cond(d.status)["message"]
        == "Pod push-1-push-1 is running (attempt 1): 75.0% of 4.0 GiB at 256.0 MiB/s, ETA 4s"
    )
    # nothing readable: no progress written, the run goes on
    d2 = decide(_running_run(), _running_pod(30), NOW, settings, log_tail="Traceback ...\n")
    assert "progress" not in d2.status["extraFields"]


def test_progress_percent_is_rounded_down() -> None:
    """A push 99.96% through is still running: it must not read 100.0%."""
    almost = progress_fields(Seen(done=27_155_000, total=27_165_696, rate_bps=1, eta_s=0.1), "t")
    assert almost["percent"] == 99.9
    assert progress_fields(Seen(done=5, total=5, rate_bps=1, eta_s=0), "t")["percent"] == 100.0


@pytest.mark.parametrize(
    ("total", "shown"),
    [(4 * 2**30, "50.0% of 4.0 GiB"), (26 * 2**20, "50.0% of 26.0 MiB"), (2**30 - 1, "50.0% of 1024.0 MiB")],
)
def test_progress_text_names_small_models_in_mib(total: int, shown: str) -> None:
    """Seen on the real cluster: a 26 MiB push read "69.1% of 0.0 GiB"."""
    text = progress_text({"bytesTotal": total, "percent": 50.0, "mibPerSecond": 1.0, "etaSeconds": 3})
    assert text == f"{shown} at 1.0 MiB/s, ETA 3s"
