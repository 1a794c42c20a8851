"""--ca-file adds a private CA to the system's trust store instead of replacing it."""

import ssl
import subprocess
from pathlib import Path

from controller.push.client import ClientOptions, RegistryClient


def test_ca_file_adds_to_system_cas(tmp_path: Path) -> None:
    ca, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    cmd += ["-subj", "/CN=private-ca", "-keyout", str(key), "-out", str(ca)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    system = len(ssl.create_default_context().get_ca_certs())
    certs = RegistryClient(ClientOptions(ca_file=ca)).session._verify_ctx.get_ca_certs()
    assert len(certs) == system + 1
    assert any(dict(x[0] for x in c["subject"]).get("commonName") == "private-ca" for c in certs)
