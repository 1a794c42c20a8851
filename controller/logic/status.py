"""The status builder: accumulates one decision's new CustomRun status and its side effects (pure)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.model.customrun import CustomRun
from controller.model.reasons import Reason


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
    delete_pods: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    outcome: Outcome | None = None
    eviction: bool = False
    needs_facts: bool = False  # a pod must be planned: gather Facts and decide again
    read_progress: bool = False  # the pod runs and its progress is due: read its log and decide again
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


class Builder:
    """The new status of one decision, starting from the run's current one."""

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

    def condition(self, status: str, reason: Reason, message: str) -> None:
        conds = [c for c in self.status.get("conditions", []) if c.get("type") != "Succeeded"]
        prev = next((c for c in self.status.get("conditions", []) if c.get("type") == "Succeeded"), None)
        changed = prev is None or prev.get("status") != status or prev.get("reason") != reason
        ltt = ts(self.now) if changed or not prev.get("lastTransitionTime") else prev["lastTransitionTime"]
        cond = {"type": "Succeeded", "status": status, "reason": str(reason), "message": message}
        cond["lastTransitionTime"] = ltt
        self.status["conditions"] = [cond, *conds]
        self.decision.reason = str(reason)

    def delete(self, pod_name: str) -> None:
        if pod_name not in self.decision.delete_pods:
            self.decision.delete_pods.append(pod_name)

    def finish(self) -> Decision:
        if self.status != self.old:
            self.decision.status = self.status
        return self.decision
