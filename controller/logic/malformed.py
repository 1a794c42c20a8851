"""A CustomRun of ours that cannot be read (pure): it ends False with InvalidCustomRun and a message naming
each bad field, instead of being skipped while the user waits for a status that never comes.

Tekton's CRD schema types the spec fields the controller reads and its webhook decodes the typed status; what
gets through on a real cluster is the schemaless `status.extraFields`, written by hand or by another tool, and
anything at all where the webhook is absent or a hand-made CRD has no schema.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from controller.logic import naming
from controller.logic.podstatus import pod_done
from controller.logic.status import Decision, Event, Outcome, ts
from controller.model.reasons import Reason

HINT = "Create a corrected CustomRun (its spec cannot be changed once created)"


def pod_name_of(raw: dict[str, Any]) -> str:
    """The current attempt's pod name, read defensively from the raw run."""
    status = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    retries = status.get("retriesStatus")
    return naming.pod_name(str((raw.get("metadata") or {}).get("name", "")), _attempt(retries))


def _attempt(retries: Any) -> int:
    return (len(retries) if isinstance(retries, list) else 0) + 1


def decide_malformed(
    raw: dict[str, Any], problems: list[str], now: datetime, pod: dict[str, Any] | None = None
) -> Decision:
    """The final status of the unreadable run `raw` (`pod`: its current attempt's pod, if any); nothing
    when it is done already."""
    d = Decision(reason=str(Reason.INVALID_CUSTOM_RUN))
    old = raw.get("status") if isinstance(raw.get("status"), dict) else {}
    conds = [c for c in old.get("conditions") or [] if isinstance(c, dict)]
    succeeded = next((c for c in conds if c.get("type") == "Succeeded"), None)
    if succeeded is not None and succeeded.get("status") in ("True", "False"):
        return d  # done runs are never touched again
    message = f"The CustomRun cannot be read: {'; '.join(problems)}. {HINT}"[:1000]
    status = copy.deepcopy(old)
    status["conditions"] = [
        {
            "type": "Succeeded",
            "status": "False",
            "reason": str(Reason.INVALID_CUSTOM_RUN),
            "message": message,
            "lastTransitionTime": ts(now),
        },
        *(c for c in conds if c.get("type") != "Succeeded"),
    ]
    status.setdefault("startTime", ts(now))
    status["completionTime"] = ts(now)
    d.status = status
    d.attempt, d.pod_name = _attempt(old.get("retriesStatus")), pod_name_of(raw)
    # a run whose spec stopped parsing mid-run (an edit the webhook let through) must not leave its pod
    if pod is not None and not pod_done(pod):
        d.delete_pods = [d.pod_name]
    d.outcome = Outcome("failed", str(Reason.INVALID_CUSTOM_RUN), "unknown", 0.0)
    d.events = [Event("Warning", "Failed", f"{Reason.INVALID_CUSTOM_RUN}: {message}")]
    d.log = "Finished run"
    return d
