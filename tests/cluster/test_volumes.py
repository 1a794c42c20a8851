"""What a work pod's container sees on the real kubelet: a Secret volume's file modes under a non-root user
(the reason a 0440 key file needs `fsGroup`), downward-API env, and an emptyDir that stays writable under a
read-only root filesystem."""

import base64
import json

from kubernetes_asyncio import client

from tests.cluster.pods import bash_pod
from tests.fixtures.cluster import wait_for_pod_phase

USER = 65532
# Reports, as JSON in the termination message, whether the key file is readable, who owns it, and what
# the downward API and the emptyDir gave the container.
SCRIPT = """
if cat /keys/cosign.key > /dev/null 2>/tmp/err; then readable=true; else readable=false; fi
touch /ro-probe 2>/dev/null && rootfs=writable || rootfs=read-only
printf '{"readable": %s, "stat": "%s", "groups": "%s", "pod": "%s", "ns": "%s", "rootfs": "%s",' \
  "$readable" "$(stat -L -c '%a %u %g' /keys/cosign.key)" "$(id -G)" "$POD" "$NS" "$rootfs" > /tmp/out
printf ' "err": "%s"}' "$(tr -d '"\\n' < /tmp/err)" >> /tmp/out
cp /tmp/out /dev/termination-log
"""


def key_pod(rc, name: str, fs_group: bool) -> dict:
    sc = {"runAsUser": USER, "runAsGroup": USER, "runAsNonRoot": True}
    if fs_group:
        sc["fsGroup"] = USER
    return bash_pod(
        rc,
        name,
        SCRIPT,
        securityContext=sc,
        volumes=[
            {"name": "keys", "secret": {"secretName": "keys", "defaultMode": 0o440}},
            {"name": "tmp", "emptyDir": {}},
        ],
        container={
            "volumeMounts": [
                {"name": "keys", "mountPath": "/keys", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
        },
    )


async def _report(core: client.CoreV1Api, ns: str, name: str) -> dict:
    got = await wait_for_pod_phase(core, ns, name, {"Succeeded", "Failed"}, timeout=120)
    assert got["status"]["phase"] == "Succeeded", got["status"]
    return json.loads(got["status"]["containerStatuses"][0]["state"]["terminated"]["message"])


async def test_secret_file_modes_under_a_non_root_user(real_cluster, real_api, real_namespace):
    core = client.CoreV1Api(real_api)
    secret = {"metadata": {"name": "keys"}, "data": {"cosign.key": base64.b64encode(b"not a key").decode()}}
    await core.create_namespaced_secret(real_namespace, secret)
    await core.create_namespaced_pod(real_namespace, key_pod(real_cluster, "no-fsgroup", fs_group=False))
    await core.create_namespaced_pod(real_namespace, key_pod(real_cluster, "fsgroup", fs_group=True))

    without = await _report(core, real_namespace, "no-fsgroup")
    with_group = await _report(core, real_namespace, "fsgroup")

    # Without fsGroup the file is root's: mode 0440 leaves a non-root user out.
    assert (without["readable"], without["stat"]) == (False, "440 0 0"), without
    assert "Permission denied" in without["err"]
    # With fsGroup the kubelet gives the file that group, which the user then holds.
    assert (with_group["readable"], with_group["stat"]) == (True, f"440 0 {USER}"), with_group
    assert str(USER) in with_group["groups"].split()
    for report, name in ((without, "no-fsgroup"), (with_group, "fsgroup")):
        assert (report["pod"], report["ns"], report["rootfs"]) == (name, real_namespace, "read-only")
