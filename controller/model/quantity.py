"""Kubernetes resource quantities and Go durations as plain numbers.

Only the forms the controller meets are supported: binary (Ki..Ei) and decimal (k..E) suffixes, plain
integers and the `m` milli suffix for quantities; `1h2m3.5s`-style strings for durations.
"""

from __future__ import annotations

import math
import re

_BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_quantity(text: str) -> int:
    """Return the quantity in base units (bytes for storage), rounded up like the API server does for
    fractional byte quantities. Raises ValueError."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 512Mi, 20Gi, 1G)")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix is None:
        factor: float = 1
    elif suffix == "m":
        factor = 1e-3
    else:
        factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return math.ceil(number * factor)


def format_quantity(value: int) -> str:
    """Format bytes with the largest binary suffix that keeps an integer, like resource.Quantity.String()
    for BinarySI (the kubelet prints negative figures too, e.g. `available: -2Ki`)."""
    if value == 0:
        return "0"
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        factor = _BINARY[suffix]
        if magnitude % factor == 0:
            return f"{sign}{magnitude // factor}{suffix}"
    return f"{sign}{magnitude}"


_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]?)(?:i?B|i)?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """A size typed by a person, in binary units: `64M`, `64Mi`, `64MB`, `1g`, `4096` -> bytes.

    For command-line flags (chunk size, model size); Kubernetes objects use `parse_quantity`, where
    `M` means 10^6."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 4096, 64M, 24Mi, 1G)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def round_up_mi(value: int) -> int:
    """Round bytes up to a whole MiB so computed requests print nicely (e.g. 96Mi, not 100663296)."""
    mib = 1024**2
    return -(-value // mib) * mib


def parse_duration(text: str) -> float:
    """Parse a Go duration (`1h0m0s`, `90s`, `500ms`, `0s`) into seconds. Raises ValueError."""
    text = text.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("empty duration")
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{text!r} is not a duration (e.g. 1h0m0s, 90s)")
    return total
