"""Certificates for the local control plane, made with the openssl CLI (no extra Python dependency).

EC P-256 keys: fast to generate, accepted by the apiserver for TLS, client auth and service-account tokens.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVICE_IP = "10.0.0.1"


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


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    path.chmod(0o600)


def _signed_cert(d: Path, name: str, subject: str, ext: str, pki_ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, crt, extfile = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    _ec_key(key)
    _openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    extfile.write_text(ext)
    ca_crt, ca_key = pki_ca
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "30", "-sha256", "-extfile", extfile, "-out", crt,
    )  # fmt: skip
    csr.unlink()
    extfile.unlink()
    return crt, key


def make_pki(d: Path) -> Pki:
    """Creates (or reuses, if complete) the CA, serving, admin and service-account keys in ``d``."""
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
    _ec_key(pki.ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", pki.ca_key, "-subj", "/CN=modelpush-local-ca", "-days", "30",
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", pki.ca_crt,
    )  # fmt: skip
    ca = (pki.ca_crt, pki.ca_key)
    sans = ",".join(
        [
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _signed_cert(
        d,
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
        ca,
    )
    _signed_cert(
        d,
        "admin",
        "/O=system:masters/CN=admin",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
        ca,
    )
    _ec_key(pki.sa_key)
    _openssl("pkey", "-in", pki.sa_key, "-pubout", "-out", pki.sa_pub)
    return pki
