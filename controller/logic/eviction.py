"""Eviction for ephemeral storage: the kubelet's figures and the size of the next attempt."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from controller.model.quantity import parse_quantity, round_up_mi

_PATTERNS = {
    "limit": [
        re.compile(r"exceeds the total limit of containers (?P<v>[0-9.]+[A-Za-z]*)"),
        re.compile(r"exceeded its local ephemeral storage limit \"(?P<v>[0-9.]+[A-Za-z]*)\""),
        re.compile(r"Usage of EmptyDir volume \"[^\"]*\" exceeds the limit \"(?P<v>[0-9.]+[A-Za-z]*)\""),
    ],
    "threshold": [re.compile(r"Threshold quantity: (?P<v>[0-9.]+[A-Za-z]*)")],
    # Over its threshold the node's available figure goes negative (kubelet prints e.g. `available: -1Mi`).
    "available": [re.compile(r"available: (?P<v>-?[0-9.]+[A-Za-z]*)")],
    "usage": [re.compile(r"was using (?P<v>[0-9.]+[A-Za-z]*)")],
    "request": [re.compile(r"request is (?P<v>[0-9.]+[A-Za-z]*)")],
}


@dataclass(frozen=True)
class Eviction:
    message: str
    usage: int | None = None
    limit: int | None = None
    threshold: int | None = None
    available: int | None = None
    request: int | None = None

    @property
    def node_pressure(self) -> bool:
        return self.threshold is not None or "low on resource" in self.message


def is_storage_eviction(reason: str | None, message: str | None) -> bool:
    text = (message or "").lower()
    return reason == "Evicted" and ("ephemeral" in text or "emptydir" in text or "storage" in text)


def _figure(name: str, message: str) -> int | None:
    for pattern in _PATTERNS[name]:
        match = pattern.search(message)
        if match:
            text = match.group("v").rstrip(".")
            sign = -1 if text.startswith("-") else 1
            try:
                return sign * parse_quantity(text.lstrip("-"))
            except ValueError:
                return None
    return None


def parse_eviction(message: str) -> Eviction:
    return Eviction(message=message, **{name: _figure(name, message) for name in _PATTERNS})


def next_request(eviction: Eviction, current: int, growth: float, ceiling: int) -> int:
    """growth × the reported usage (or the limit that was hit when no usage is reported), never below the
    current request, never above the ceiling."""
    basis = eviction.usage if eviction.usage is not None else max(eviction.limit or 0, current)
    wanted = round_up_mi(math.ceil(basis * growth))
    return min(ceiling, max(wanted, current))
