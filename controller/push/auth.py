"""Credentials and auth challenges (pure parts): Docker config.json lookup and WWW-Authenticate parsing."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

from controller.logic.credentials import registry_host

from .errors import AuthError, InvalidInput

_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    """A username and password, or a password read from `password_file` at each use.

    The file form carries a projected ServiceAccount token: the kubelet rotates it in place, so it is
    read again for every token request instead of once at start.
    """

    username: str
    password: str = ""
    password_file: Path | None = None

    def secret(self) -> str:
        if self.password_file is None:
            return self.password
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise AuthError(f"cannot read the token file {self.password_file}: {exc}") from exc

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        return f"Credentials(username={self.username!r})"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lowercased
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def load_authfile(path: Path) -> dict[str, Credentials]:
    """Read a Docker config.json (or a `.dockerconfigjson` Secret's content) into host -> credentials."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"--authfile {path}: file not found") from exc
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"--authfile {path}: not a readable JSON file ({exc})") from exc
    auths = doc.get("auths", doc) if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise InvalidInput(f"--authfile {path}: expected an object with an 'auths' map")
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        user, pw = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput(f"--authfile {path}: entry {key!r} has an invalid 'auth' value") from exc
        if user is not None and pw is not None:
            out[registry_host(key)] = Credentials(str(user), str(pw))
    return out


def load_auth_dir(path: Path) -> dict[str, Credentials]:
    """The credentials the controller mounted (controller/logic/credentials.py), first file wins per host.

    Files are read in name order, which is the precedence order: `NN-<secret>.dockerconfigjson`,
    `NN-<secret>.dockercfg` and `NN-<secret>.basic/<host>/{username,password}`.
    """
    if not path.is_dir():
        raise InvalidInput(f"--auth-dir {path}: not a directory")
    out: dict[str, Credentials] = {}
    for entry in sorted(path.iterdir()):
        found: dict[str, Credentials] = {}
        if entry.name.endswith((".dockerconfigjson", ".dockercfg")) and entry.is_file():
            found = load_authfile(entry)
        elif entry.name.endswith(".basic") and entry.is_dir():
            for host_dir in sorted(entry.iterdir()):
                try:
                    user = (host_dir / "username").read_text().strip()
                    password = (host_dir / "password").read_text().strip()
                except OSError as exc:
                    raise InvalidInput(f"--auth-dir {path}: cannot read {host_dir.name}: {exc}") from exc
                found[registry_host(host_dir.name)] = Credentials(user, password)
        for host, creds in found.items():
            out.setdefault(host, creds)
    return out
