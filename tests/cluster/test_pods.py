"""What a failed container reports on the real kubelet, which the controller turns into a run's reason: the
log tail under FallbackToLogsOnError, and StartError for a command that does not exist. (Exit codes and
termination messages of ordinary runs: tests/cluster/test_realnodes.py.)"""

from kubernetes_asyncio import client

from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import wait_for_pod_phase


async def test_fallback_to_logs_on_error_uses_log_tail(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    script = "echo 'line one'; echo 'registry said 503' >&2; exit 4"
    spec = bash_pod(
        real_cluster, "logs", script, container={"terminationMessagePolicy": "FallbackToLogsOnError"}
    )
    await core.create_namespaced_pod(real_namespace, spec)

    got = await wait_for_pod_phase(core, real_namespace, "logs", {"Succeeded", "Failed"})

    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (got["status"]["phase"], term["exitCode"]) == ("Failed", 4)
    assert "registry said 503" in term["message"]


async def test_missing_executable_fails_with_start_error(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    spec = bash_pod(real_cluster, "noexec", "", container={"command": ["definitely-not-a-binary"]})
    await core.create_namespaced_pod(real_namespace, spec)

    got = await wait_for_pod_phase(core, real_namespace, "noexec", {"Succeeded", "Failed"})

    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (got["status"]["phase"], term["reason"], term["exitCode"]) == ("Failed", "StartError", 128)
    assert "definitely-not-a-binary" in term["message"]
