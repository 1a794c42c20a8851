"""The pod's own activeDeadlineSeconds: the kubelet's DeadlineExceeded names the cause even though our
own clock has also run out by the time we see it (the pod's deadline counts from its later start)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.logic.decision import decide, ts
from controller.settings import Settings
from tests.unit.controller.helpers import NOW, pod, run

SETTINGS = Settings(leader_election=False)
KUBELET = "Pod was active on the node longer than the specified deadline"  # pkg/kubelet/active_deadline.go


def status(age: int) -> dict:
    return {
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": "running"}],
        "startTime": ts(NOW - timedelta(seconds=age)),
        "extraFields": {"attempt": 1, "mode": "copy", "podName": "push-1-push-1"},
    }


@pytest.mark.parametrize("age", [5, 8, 600])  # before, just after and long after our own deadline
def test_kubelet_deadline_message_is_kept(age: int) -> None:
    failed = pod("Failed", reason="DeadlineExceeded", message=KUBELET)
    d = decide(run(status=status(age), timeout="6s"), failed, NOW, SETTINGS)
    c = d.status["conditions"][0]
    assert (c["status"], c["reason"]) == ("False", "CustomRunTimedOut"), c
    assert KUBELET in c["message"] and "Attempt 1" in c["message"], c["message"]
    assert not d.delete_pods  # the kubelet already ended it


def test_own_clock_still_times_out_a_running_pod() -> None:
    d = decide(run(status=status(8), timeout="6s"), pod("Running"), NOW, SETTINGS)
    c = d.status["conditions"][0]
    assert (c["reason"], c["message"]) == ("CustomRunTimedOut", "Attempt 1 timed out after 6s")
    assert d.delete_pods == ["push-1-push-1"]
