"""A tiny synchronous HTTPS client for the apiserver (readiness, installing manifests) with the admin cert.

The launcher runs before any event loop exists (CLI, session fixtures), so it stays synchronous on purpose.
"""

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class Rest:
    def __init__(self, server: str, ca: Path, cert: Path, key: Path) -> None:
        self.server = server.rstrip("/")
        self._ctx = ssl.create_default_context(cafile=str(ca))
        self._ctx.load_cert_chain(str(cert), str(key))

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> tuple[int, dict[str, Any] | str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read())

    def ok(self, path: str) -> bool:
        try:
            code, _ = self.request("GET", path, timeout=3)
        except OSError:
            return False
        return code == 200


def _decode(raw: bytes) -> dict[str, Any] | str:
    try:
        out = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
    return out if isinstance(out, dict) else {"items": out}
