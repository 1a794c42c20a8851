"""Free loopback ports, so that two clusters on one machine never collide."""

import socket
from pathlib import Path

ATTEMPTS = 3  # how often a start is retried with fresh ports when another process took the picked one


def free_port() -> int:
    """A port the kernel considers free now. Someone else may bind it before our server does, so every
    caller retries its start with a fresh port when the server reports `in_use` (up to ATTEMPTS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_use(*logs: Path) -> bool:
    """True when a server's log says its bind failed because the address was taken (Go and Python)."""
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "address already in use" in text.lower():
            return True
    return False
