from hack.nodeagent.podstatus import Terminated, container_status, pod_status, termination_message

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
    "spec": {"containers": [{"name": "push", "image": "quay.io/modelpush/model-image-push:latest"}]},
    "status": {
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]
    },
}
C = POD["spec"]["containers"][0]


def test_terminated_container_status():
    t = Terminated(3, "Error", "disk full", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z")
    cs = container_status(C, container_id="local://12", terminated=t)
    assert cs["state"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "message": "disk full",
        "startedAt": "2026-01-01T00:00:01Z",
        "finishedAt": "2026-01-01T00:00:02Z",
        "containerID": "local://12",
    }
    assert cs["ready"] is False and cs["restartCount"] == 0


def test_waiting_and_running_states():
    assert container_status(C, waiting=("ErrImagePull", "nope"))["state"] == {
        "waiting": {"reason": "ErrImagePull", "message": "nope"}
    }
    run = container_status(C, running_since="2026-01-01T00:00:01Z")
    assert run["state"] == {"running": {"startedAt": "2026-01-01T00:00:01Z"}} and run["ready"] is True


def test_succeeded_pod_status_keeps_pod_scheduled_and_marks_not_ready():
    st = pod_status(POD, phase="Succeeded", container_statuses=[], start_time="t0", ts="t1")
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["PodScheduled"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodCompleted"
    assert st["phase"] == "Succeeded" and st["reason"] is None and st["startTime"] == "t0"


def test_evicted_pod_status_has_disruption_target():
    st = pod_status(
        POD, phase="Failed", container_statuses=[], start_time="t0", reason="Evicted", message="m"
    )
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["DisruptionTarget"]["reason"] == "TerminationByKubelet"
    assert conds["DisruptionTarget"]["message"] == "m"
    assert (st["reason"], st["message"]) == ("Evicted", "m")


def test_running_pod_is_ready():
    st = pod_status(POD, phase="Running", container_statuses=[], start_time="t0", ready=True)
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"


def test_termination_message_file_then_log_fallback():
    assert termination_message("x" * 5000, "", 0, "File") == "x" * 4096
    assert termination_message("", "a\nb\n", 1, "FallbackToLogsOnError") == "a\nb"
    assert termination_message("", "a\nb\n", 1, "File") == ""
    assert termination_message("", "a\nb\n", 0, "FallbackToLogsOnError") == ""
