"""Local OCI registry on a free 127.0.0.1 port (contract B): one of the registry matrix's implementations.

Implementations (`kind`): `docker-registry` (Debian's 2.8 package, the default; TLS, htpasswd and token
auth), `distribution` (distribution v3, built by hack/build-registries.sh; same config file) and `ggcr`
(go-containerregistry's in-memory registry, built likewise; plain HTTP, no auth). zot is not in the
matrix: the Go module proxy here refuses `zotregistry.dev/zot` (403 Forbidden).

Python API (async): `reg = LocalRegistry(root, tls=False, htpasswd=None, kind="docker-registry")`,
`await reg.start()`, `await reg.stop()`.
Sync equivalents `start_sync()` / `stop_sync()` exist for scripts. Attributes: `host` ("127.0.0.1:PORT"),
`url`, `ca_file` (with tls), `root`. `listen` is the address it serves on (default 127.0.0.1; the pod
network's gateway for registries that pods use). With `tls=True` a self-signed CA + server certificate
for that address is made with openssl; with `htpasswd={"user": "password"}` Basic auth is enabled
(bcrypt hashes).

CLI: `python -m hack.registry serve --dir D [--tls] [--user alice:secret] [--kind ggcr]` prints
host:port and runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from hack.certs import RSA_2048, new_key, self_signed_cert, signed_cert
from hack.ports import free_port

REGISTRY_BIN = os.environ.get("DOCKER_REGISTRY_BIN", "/usr/bin/docker-registry")
CACHE_BIN = Path(os.environ.get("MODELPUSH_CACHE", Path.home() / ".cache" / "model-image-push")) / "bin"
# Pinned like hack/build-registries.sh (which builds them): kind -> (binary, version label).
GO_REGISTRIES = {
    "distribution": CACHE_BIN / "distribution-v3.0.0" / "registry",
    "ggcr": CACHE_BIN / "ggcr-v0.22.1" / "registry",
}
KINDS = ("docker-registry", *GO_REGISTRIES)
START_TIMEOUT = 20.0
CERT_DAYS = 2


def make_cert(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `ip` (and 127.0.0.1/localhost) signed by it:
    (ca, cert, key). Pods reach a registry at the pod network's gateway, so its IP must be in the SAN."""
    # The CA sits alone in its own dir so it can be passed as a skopeo/buildah --cert-dir too
    # (a *.key there would be taken for a client certificate).
    (directory / "ca").mkdir(parents=True, exist_ok=True)
    ca_key, ca = new_key(directory / "ca.key", RSA_2048), directory / "ca" / "ca.crt"
    san = ",".join(dict.fromkeys([f"IP:{ip}", "IP:127.0.0.1", "DNS:localhost"]))
    self_signed_cert(ca, ca_key, "/CN=model-image-push test CA", CERT_DAYS)
    cert, key = signed_cert(
        directory / "server.crt",
        directory / "server.key",
        f"/CN={ip}",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n",
        (ca, ca_key),
        CERT_DAYS,
        RSA_2048,
    )
    return ca, cert, key


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    import bcrypt  # only needed for auth-enabled registries

    lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")


class LocalRegistry:
    """One docker-registry process. Storage under `root/data`, config and logs under `root`."""

    def __init__(
        self,
        root: Path,
        tls: bool = False,
        htpasswd: dict[str, str] | None = None,
        token_auth: dict[str, str] | None = None,
        kind: str = "docker-registry",
        listen: str = "127.0.0.1",
    ) -> None:
        """`token_auth`: the registry's `auth.token` section (realm, service, issuer, rootcertbundle).
        `listen`: the address to serve on (the pod network's gateway, so that pods reach it too)."""
        if kind not in KINDS:
            raise ValueError(f"unknown registry kind {kind!r}; one of {', '.join(KINDS)}")
        if kind == "ggcr" and (tls or htpasswd or token_auth):
            raise ValueError("the ggcr registry serves plain HTTP without auth only")
        self.kind = kind
        self.listen = listen
        self.root = Path(root)
        self.tls = tls
        self.htpasswd = htpasswd
        self.token_auth = token_auth
        self.port = 0
        self.ca_file: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"{self.listen}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> str:
        cfg: dict = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "json", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "model-image-push-local", "relativeurls": False},
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.tls:
            ca, cert, key = make_cert(self.root / "certs", self.listen)
            self.ca_file = ca
            cfg["http"]["tls"] = {"certificate": str(cert), "key": str(key)}
        if self.htpasswd:
            path = self.root / "htpasswd"
            write_htpasswd(path, self.htpasswd)
            cfg["auth"] = {"htpasswd": {"realm": "model-image-push", "path": str(path)}}
        elif self.token_auth:
            cfg["auth"] = {"token": dict(self.token_auth)}
        # docker-registry reads YAML; JSON is valid YAML.
        return json.dumps(cfg)

    def _ready(self) -> bool:
        ctx = None
        if self.tls and self.ca_file is not None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=ctx):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # alive, wants auth
        except (OSError, urllib.error.URLError):
            return False

    def _binary(self) -> Path:
        binary = Path(REGISTRY_BIN) if self.kind == "docker-registry" else GO_REGISTRIES[self.kind]
        if not binary.exists():
            raise RuntimeError(
                f"{binary} missing: run hack/install-deps.sh "
                + (
                    "(Debian package docker-registry)"
                    if self.kind == "docker-registry"
                    else "(it runs hack/build-registries.sh)"
                )
            )
        return binary

    def _command(self, binary: Path) -> list[str]:
        if self.kind == "ggcr":
            # Its only flag is -port; it listens on localhost and keeps blobs in memory.
            return [str(binary), "-port", str(self.port)]
        config = self.root / "config.yml"
        config.write_text(self._config())
        return [str(binary), "serve", str(config)]

    def start_sync(self) -> None:
        binary = self._binary()
        self.root.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # the free port can be taken between probing and binding
            self.port = free_port()
            log = open(self.root / "registry.log", "ab")
            self._proc = subprocess.Popen(
                self._command(binary), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
            log.close()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._proc.poll() is None:
                if self._ready():
                    return
                time.sleep(0.1)
            self.stop_sync()
        raise RuntimeError(f"{self.kind} did not start; see {self.root / 'registry.log'}")

    def stop_sync(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    def wipe(self) -> None:
        """Delete stored data (registry must be stopped)."""
        shutil.rmtree(self.root / "data", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hack.registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run a registry until killed; prints host:port")
    serve.add_argument("--dir", type=Path, required=True, help="storage/config directory")
    serve.add_argument(
        "--tls", action="store_true", help="self-signed TLS (CA written to DIR/certs/ca/ca.crt)"
    )
    serve.add_argument("--listen", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    serve.add_argument("--user", action="append", default=[], metavar="USER:PASSWORD", help="htpasswd user")
    serve.add_argument("--kind", choices=KINDS, default="docker-registry", help="registry implementation")
    args = parser.parse_args(argv)
    users = dict(u.split(":", 1) for u in args.user) or None
    reg = LocalRegistry(args.dir, tls=args.tls, htpasswd=users, kind=args.kind, listen=args.listen)
    reg.start_sync()
    print(reg.host, flush=True)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with contextlib.suppress(KeyboardInterrupt):
        while not stop and reg._proc is not None and reg._proc.poll() is None:
            time.sleep(0.5)
    reg.stop_sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
