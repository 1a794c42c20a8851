"""Certificates for the local control plane, made with the openssl CLI (no extra Python dependency).

EC P-256 keys: fast to generate, accepted by the apiserver for TLS, client auth and service-account tokens.
"""

from dataclasses import dataclass
from pathlib import Path

from hack.certs import new_key, openssl, self_signed_cert, signed_cert

SERVICE_IP = "10.0.0.1"
DAYS = 30


@dataclass(frozen=True)
class Pki:
    ca_crt: Path
    ca_key: Path
    serving_crt: Path
    serving_key: Path
    admin_crt: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def make_pki(d: Path, ips: tuple[str, ...] = ()) -> Pki:
    """Creates (or reuses, if complete) the CA, serving, admin and service-account keys in ``d``.

    ``ips``: more addresses the apiserver serves on (the pod network's gateway when nodes are real)."""
    d.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_crt=d / "ca.crt",
        ca_key=d / "ca.key",
        serving_crt=d / "apiserver.crt",
        serving_key=d / "apiserver.key",
        admin_crt=d / "admin.crt",
        admin_key=d / "admin.key",
        sa_key=d / "sa.key",
        sa_pub=d / "sa.pub",
    )
    if all(p.exists() for p in vars(pki).values()):
        return pki
    new_key(pki.ca_key)
    self_signed_cert(
        pki.ca_crt,
        pki.ca_key,
        "/CN=modelpush-local-ca",
        DAYS,
        ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
    )
    ca = (pki.ca_crt, pki.ca_key)
    sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            *(f"IP:{ip}" for ip in ips),
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    signed_cert(
        pki.serving_crt,
        pki.serving_key,
        "/CN=kube-apiserver",
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
        ca,
        DAYS,
    )
    signed_cert(
        pki.admin_crt,
        pki.admin_key,
        "/O=system:masters/CN=admin",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
        ca,
        DAYS,
    )
    new_key(pki.sa_key)
    openssl("pkey", "-in", pki.sa_key, "-pubout", "-out", pki.sa_pub)
    return pki
