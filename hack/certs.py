"""Keys and X.509 certificates made with the openssl CLI (no extra Python dependency).

The one place that knows openssl's command lines: the local control plane's PKI
(`hack.localcluster.certs`), the TLS registry's serving certificate (`hack.registry`) and the test token
server's signing certificate (`tests/push/tokenserver.py`) are all built from these.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

# `openssl genpkey` algorithm options.
EC_P256 = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
RSA_2048 = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")


def openssl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    """Runs `openssl ARGS` and returns its stdout; a failure raises CalledProcessError (stderr captured)."""
    return subprocess.run(["openssl", *map(str, args)], input=stdin, check=True, capture_output=True).stdout


def new_key(path: Path, algorithm: Sequence[str] = EC_P256) -> Path:
    """An unencrypted private key (PKCS#8 PEM) readable by its owner only."""
    openssl("genpkey", *algorithm, "-out", path)
    path.chmod(0o600)
    return path


def self_signed_cert(crt: Path, key: Path, subject: str, days: int, extensions: Sequence[str] = ()) -> Path:
    """A certificate for `key` signed by itself (a CA, or a lone signing certificate).

    `extensions` are `-addext` values; without them openssl's config defaults apply (a v3 CA).
    """
    addext = [arg for ext in extensions for arg in ("-addext", ext)]
    openssl(
        "req", "-x509", "-new", "-key", key, "-subj", subject, "-days", str(days), "-sha256", *addext,
        "-out", crt,
    )  # fmt: skip
    return crt


def signed_cert(
    crt: Path,
    key: Path,
    subject: str,
    extensions: str,
    ca: tuple[Path, Path],
    days: int,
    algorithm: Sequence[str] = EC_P256,
) -> tuple[Path, Path]:
    """A new key at `key` and a certificate for it at `crt`, signed by `ca` (its certificate and key).

    `extensions` is the text of an openssl extension file (`subjectAltName=...` lines). The CSR and the
    extension file are temporary; openssl keeps the CA's serial number next to the CA certificate.
    """
    new_key(key, algorithm)
    csr, extfile = crt.with_suffix(".csr"), crt.with_suffix(".ext")
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    extfile.write_text(extensions)
    ca_crt, ca_key = ca
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-days", str(days), "-sha256", "-extfile", extfile, "-out", crt,
    )  # fmt: skip
    csr.unlink()
    extfile.unlink()
    return crt, key
