"""Pod lifecycle on the node agent: deadlines, graceful deletion, image allow-list, volumes and env."""

import base64
import json
import os

from kubernetes_asyncio import client

from tests.cluster.pods import pod
from tests.fixtures.cluster import read_pod, wait_for, wait_for_pod_phase


async def test_active_deadline_fails_pod_with_deadline_exceeded(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(
        namespace, pod("slow", "import time; time.sleep(300)", activeDeadlineSeconds=2)
    )

    got = await wait_for_pod_phase(core, namespace, "slow", {"Succeeded", "Failed"}, timeout=60)

    assert got["status"]["phase"] == "Failed"
    assert got["status"]["reason"] == "DeadlineExceeded"
    assert got["status"]["message"] == "Pod was active on the node longer than the specified deadline"


async def test_graceful_deletion_sends_sigterm_then_removes_pod(kube_api, namespace, make_pvc):
    core = client.CoreV1Api(kube_api)
    out = await make_pvc(namespace, "out")
    script = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    open('/out/sigterm', 'w').write('got SIGTERM'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "time.sleep(300)\n"
    )
    spec = {
        "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "out"}}],
        "container": {"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
    }
    await core.create_namespaced_pod(namespace, pod("polite", script, **spec))
    running = await wait_for_pod_phase(core, namespace, "polite", "Running")
    pid = int(running["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))

    await core.delete_namespaced_pod("polite", namespace, grace_period_seconds=30)

    async def removed() -> bool:
        pods = await core.list_namespaced_pod(namespace)
        return not pods.items

    await wait_for(removed, 30, "pod removal after graceful deletion")
    assert (out / "sigterm").read_text() == "got SIGTERM"
    assert not _alive(pid)


async def test_process_ignoring_sigterm_is_killed_after_grace_period(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    await core.create_namespaced_pod(namespace, pod("stubborn", script, terminationGracePeriodSeconds=1))
    running = await wait_for_pod_phase(core, namespace, "stubborn", "Running")
    pid = int(running["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))

    await core.delete_namespaced_pod("stubborn", namespace)

    async def removed() -> bool:
        return not (await core.list_namespaced_pod(namespace)).items

    await wait_for(removed, 30, "pod removal after the grace period")
    assert not _alive(pid)


async def test_unknown_image_waits_with_errimagepull(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    spec = pod("nope", "print(1)", container={"image": "docker.io/library/busybox:1"})
    await core.create_namespaced_pod(namespace, spec)

    async def pulling() -> dict | None:
        p = await read_pod(core, namespace, "nope")
        cs = p.get("status", {}).get("containerStatuses") or [{}]
        waiting = cs[0].get("state", {}).get("waiting") or {}
        return p if waiting.get("reason") == "ErrImagePull" else None

    got = await wait_for(pulling, 30, "ErrImagePull")
    assert got["status"]["phase"] == "Pending"
    assert "busybox" in got["status"]["containerStatuses"][0]["state"]["waiting"]["message"]


async def test_volumes_env_and_path_mapping(kube_api, namespace, make_pvc):
    core = client.CoreV1Api(kube_api)
    models = await make_pvc(namespace, "models")
    (models / "weights.bin").write_bytes(b"w" * 1000)
    secret = {
        "metadata": {"name": "auth"},
        "data": {"config.json": base64.b64encode(b'{"auths": {}}').decode()},
    }
    await core.create_namespaced_secret(namespace, secret)
    script = (
        "import os, json, pathlib\n"
        "size = os.path.getsize('/models/weights.bin')\n"
        "auth = json.load(open(os.environ['AUTHFILE']))\n"
        "pathlib.Path('/scratch/x').write_text('tmp')\n"
        "res = {'size': size, 'auths': auth['auths'], 'pod': os.environ['POD'], 'ns': os.environ['NS'],\n"
        "       'argv_dir': os.environ['OUT'], 'home_is_cwd': os.environ['HOME'] == os.getcwd()}\n"
        "open('/dev/termination-log', 'w').write(json.dumps(res))\n"
        "open('$(OUT)/done', 'w').write('yes')\n"
    )
    spec = {
        "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
            {"name": "auth", "secret": {"secretName": "auth"}},
            {"name": "scratch", "emptyDir": {}},
        ],
        "container": {
            "volumeMounts": [
                {"name": "models", "mountPath": "/models"},
                {"name": "auth", "mountPath": "/var/run/auth", "readOnly": True},
                {"name": "scratch", "mountPath": "/scratch"},
            ],
            "env": [
                {"name": "AUTHFILE", "value": "/var/run/auth/config.json"},
                {"name": "OUT", "value": "/models/out"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
        },
    }
    (models / "out").mkdir()
    await core.create_namespaced_pod(namespace, pod("mapped", script, **spec))

    got = await wait_for_pod_phase(core, namespace, "mapped", {"Succeeded", "Failed"})

    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert got["status"]["phase"] == "Succeeded", term
    res = json.loads(term["message"])
    assert res["size"] == 1000
    assert res["auths"] == {}
    assert (res["pod"], res["ns"]) == ("mapped", namespace)
    assert res["argv_dir"] == str(models / "out")
    assert res["home_is_cwd"] is True
    assert (models / "out" / "done").read_text() == "yes"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_running_pod_lost_by_agent_restart_is_reported_failed(cluster, kube_api, namespace):
    from hack.localcluster.procs import stop_recorded
    from tests.fixtures.cluster import NODES

    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod("orphan", "import time; time.sleep(300)"))
    running = await wait_for_pod_phase(core, namespace, "orphan", "Running")
    pid = int(running["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))

    # Restart the node agent: its containers die with it, as they would with a kubelet's runtime gone.
    stop_recorded(cluster.local.piddir, ["nodeagent"])
    cluster.local.start_node_agent(NODES, cluster.state_dir)

    got = await wait_for_pod_phase(core, namespace, "orphan", {"Succeeded", "Failed"}, timeout=60)
    term = got["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("ContainerStatusUnknown", 137)
    assert not _alive(pid)
