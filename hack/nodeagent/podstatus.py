"""Pod status documents shaped like the kubelet's (pure: callers pass times and results)."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOST_IP = "127.0.0.1"
MAX_TERMINATION_MESSAGE = 4096  # the kubelet's limit per container
FALLBACK_LOG_BYTES = 2048
FALLBACK_LOG_LINES = 80


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str  # Completed | Error | StartError | ...
    message: str
    started_at: str
    finished_at: str
    signal: int | None = None


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def termination_message(file_text: str, log_tail: str, exit_code: int, policy: str) -> str:
    """terminationMessagePath content; with FallbackToLogsOnError, the log tail when that is empty and the
    container failed."""
    msg = file_text[:MAX_TERMINATION_MESSAGE]
    if not msg.strip() and exit_code != 0 and policy == "FallbackToLogsOnError":
        lines = log_tail.splitlines()[-FALLBACK_LOG_LINES:]
        msg = "\n".join(lines)[-FALLBACK_LOG_BYTES:]
    return msg


def container_status(
    c: dict[str, Any],
    *,
    container_id: str = "",
    waiting: tuple[str, str] | None = None,
    running_since: str | None = None,
    terminated: Terminated | None = None,
) -> dict[str, Any]:
    state: dict[str, Any]
    if terminated is not None:
        t: dict[str, Any] = {
            "exitCode": terminated.exit_code,
            "reason": terminated.reason,
            "startedAt": terminated.started_at,
            "finishedAt": terminated.finished_at,
            "containerID": container_id,
        }
        if terminated.message:
            t["message"] = terminated.message
        if terminated.signal:
            t["signal"] = terminated.signal
        state = {"terminated": t}
    elif running_since is not None:
        state = {"running": {"startedAt": running_since}}
    else:
        reason, message = waiting or ("ContainerCreating", "")
        state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    out: dict[str, Any] = {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": "",
        "ready": running_since is not None and terminated is None,
        "started": running_since is not None and terminated is None,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }
    if container_id:
        out["containerID"] = container_id
    return out


def _cond(
    existing: dict[str, dict[str, Any]], type_: str, status: str, ts: str, reason: str = "", message: str = ""
):
    old = existing.get(type_)
    c: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None}
    c["lastTransitionTime"] = old["lastTransitionTime"] if old and old.get("status") == status else ts
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def conditions(
    existing: list[dict[str, Any]] | None,
    *,
    phase: str,
    containers: list[str],
    ready: bool,
    started: bool,
    ts: str,
    disruption: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Kubelet-style conditions; keeps PodScheduled (the scheduler's) and unchanged transition times."""
    ex = {c["type"]: c for c in existing or []}
    out = []
    if disruption:
        out.append(_cond(ex, "DisruptionTarget", "True", ts, disruption[0], disruption[1]))
    out.append(_cond(ex, "PodReadyToStartContainers", "True" if started else "False", ts))
    out.append(_cond(ex, "Initialized", "True", ts))
    if ready:
        out += [_cond(ex, "Ready", "True", ts), _cond(ex, "ContainersReady", "True", ts)]
    else:
        if phase in ("Succeeded", "Failed"):
            reason, msg = ("PodCompleted" if phase == "Succeeded" else "PodFailed"), ""
        else:
            reason, msg = "ContainersNotReady", f"containers with unready status: [{' '.join(containers)}]"
        out += [
            _cond(ex, "Ready", "False", ts, reason, msg),
            _cond(ex, "ContainersReady", "False", ts, reason, msg),
        ]
    if "PodScheduled" in ex:
        out.append(ex["PodScheduled"])
    return out


def pod_status(
    pod: dict[str, Any],
    *,
    phase: str,
    container_statuses: list[dict[str, Any]],
    init_statuses: list[dict[str, Any]] | None = None,
    start_time: str,
    ready: bool = False,
    started: bool = True,
    reason: str | None = None,
    message: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """The full `status` for a merge patch (lists are replaced whole, so they are always complete)."""
    ts = ts or now()
    disruption = ("TerminationByKubelet", message or "") if reason == "Evicted" else None
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    st: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions(
            pod.get("status", {}).get("conditions"),
            phase=phase,
            containers=names,
            ready=ready,
            started=started,
            ts=ts,
            disruption=disruption,
        ),
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": HOST_IP,
        "podIPs": [{"ip": HOST_IP}],
        "startTime": start_time,
        "containerStatuses": container_statuses,
        # Explicit nulls clear stale values under JSON merge-patch semantics.
        "reason": reason,
        "message": message,
    }
    if init_statuses:
        st["initContainerStatuses"] = init_statuses
    return st
