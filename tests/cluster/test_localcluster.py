"""The launcher itself: certificates, a second control plane next to the session's real-node cluster, clean
teardown."""

import os
import socket

from hack.certs import openssl
from hack.localcluster import LocalCluster
from hack.localcluster.certs import make_pki
from hack.localcluster.procs import read_pid


def test_serving_cert_and_admin_identity(tmp_path):
    pki = make_pki(tmp_path / "pki")

    text = openssl("x509", "-in", pki.serving_crt, "-noout", "-text").decode()
    assert "IP Address:127.0.0.1" in text and "IP Address:10.0.0.1" in text and "DNS:localhost" in text
    subject = openssl("x509", "-in", pki.admin_crt, "-noout", "-subject").decode()
    assert "O = system:masters" in subject
    openssl("verify", "-CAfile", pki.ca_crt, pki.serving_crt, pki.admin_crt)


def _port_free(port: int) -> bool:
    """Nothing listens there any more (a bind test would trip over TIME_WAIT from closed connections)."""
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_second_cluster_coexists_and_stops_cleanly(real_cluster, tmp_path):
    # A control plane without nodes takes no host lock; it must not disturb the real-node cluster.
    other = LocalCluster(tmp_path / "other", die_with_parent=True)
    try:
        other.start()
        assert other.server != real_cluster.local.server
        assert other.running() and real_cluster.local.running()
        code, version = other.rest().request("GET", "/version")
        assert code == 200 and version["gitVersion"] == "v1.33.13"
        pids = [read_pid(other.piddir, n) for n in ("etcd", "kube-apiserver", "kube-controller-manager")]
        ports = [other.apiserver_port, other.etcd_port]
    finally:
        other.stop()

    for pid in pids:
        assert pid is not None
        assert _gone(pid)
    assert all(_port_free(p) for p in ports)
    assert real_cluster.local.running()  # the session cluster is untouched


def test_stale_pid_file_never_signals_another_process(tmp_path):
    # A pid file from before a reboot may name a pid that now belongs to someone else.
    (tmp_path / "etcd.pid").write_text(f"{os.getpid()} 1\n")
    assert read_pid(tmp_path, "etcd") is None
    LocalCluster(tmp_path / "nothing").stop()  # and stopping a cluster that never ran is a no-op
