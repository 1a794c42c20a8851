"""Pods run on the local node agent and report status the way the kubelet does."""

from kubernetes_asyncio import client

from hack.nodeagent.runner import REPO
from tests.cluster.pods import pod
from tests.fixtures.cluster import NODE, wait_for_pod_phase


async def test_pod_succeeds_with_termination_message(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    script = "open('/dev/termination-log', 'w').write('all good'); print('hello')"
    await core.create_namespaced_pod(namespace, pod("ok", script))

    got = await wait_for_pod_phase(core, namespace, "ok", {"Succeeded", "Failed"})

    assert got["status"]["phase"] == "Succeeded"
    assert got["spec"]["nodeName"] == NODE
    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0
    assert term["reason"] == "Completed"
    assert term["message"] == "all good"
    assert term["startedAt"] and term["finishedAt"]
    conds = {c["type"]: c for c in got["status"]["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodCompleted"
    assert conds["PodScheduled"]["status"] == "True"


async def test_failing_command_gives_failed_with_exit_code(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    script = "echo 'disk full' > /dev/termination-log; exit 3"
    await core.create_namespaced_pod(namespace, pod("bad", script, shell=True))

    got = await wait_for_pod_phase(core, namespace, "bad", {"Succeeded", "Failed"})

    assert got["status"]["phase"] == "Failed"
    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3
    assert term["reason"] == "Error"
    assert term["message"] == "disk full\n"


async def test_fallback_to_logs_on_error_uses_log_tail(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    script = "import sys; print('line one'); print('registry said 503', file=sys.stderr); sys.exit(4)"
    spec = pod("logs", script, container={"terminationMessagePolicy": "FallbackToLogsOnError"})
    await core.create_namespaced_pod(namespace, spec)

    got = await wait_for_pod_phase(core, namespace, "logs", {"Succeeded", "Failed"})

    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 4
    assert "registry said 503" in term["message"]


async def test_missing_executable_fails_with_start_error(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    spec = pod("noexec", "", container={"command": ["definitely-not-a-binary"]})
    await core.create_namespaced_pod(namespace, spec)

    got = await wait_for_pod_phase(core, namespace, "noexec", {"Succeeded", "Failed"})

    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (got["status"]["phase"], term["reason"], term["exitCode"]) == ("Failed", "StartError", 128)
    assert "definitely-not-a-binary" in term["message"]


async def test_mount_over_the_checkouts_parent_keeps_the_venv(kube_api, namespace):
    # Work pods mount an emptyDir at /tmp; a checkout under /tmp (as CI's may be) must still run the
    # checkout's python: mount paths are mapped in the pod's own values, never in the agent's PATH.
    core = client.CoreV1Api(kube_api)
    top = "/" + REPO.parts[1]
    script = "import sys, controller.push; assert sys.prefix != sys.base_prefix, sys.prefix"
    spec = pod(
        "venv",
        script,
        volumes=[{"name": "scratch", "emptyDir": {}}],
        container={"volumeMounts": [{"name": "scratch", "mountPath": top}]},
    )
    await core.create_namespaced_pod(namespace, spec)

    got = await wait_for_pod_phase(core, namespace, "venv", {"Succeeded", "Failed"})

    assert got["status"]["phase"] == "Succeeded", got["status"]["containerStatuses"][0]["state"]
