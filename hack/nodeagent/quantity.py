"""Kubernetes resource quantities: parsing to numbers and formatting like resource.Quantity.String()."""

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def parse_quantity(q: str | int | float) -> Decimal:
    """'64Mi' -> 67108864, '100m' -> 0.1, '1e3' -> 1000. Raises ValueError on malformed input."""
    if isinstance(q, int | float):
        return Decimal(str(q))
    m = _QUANTITY.match(q.strip())
    if not m:
        raise ValueError(f"invalid quantity {q!r}")
    try:
        num = Decimal(m.group(1))
    except InvalidOperation:
        raise ValueError(f"invalid quantity {q!r}") from None
    suffix = m.group(2)
    if suffix in _BINARY:
        return num * _BINARY[suffix]
    if suffix in _DECIMAL:
        return num * _DECIMAL[suffix]
    exp = _EXPONENT.match(suffix)
    if exp:
        return num * Decimal(10) ** int(exp.group(1))
    raise ValueError(f"invalid quantity {q!r}")


def to_bytes(q: str | int | float) -> int:
    """A byte count, rounded up like the apiserver does for fractional byte quantities."""
    return math.ceil(parse_quantity(q))


def format_bytes(n: int) -> str:
    """Like resource.NewQuantity(n, BinarySI).String(): the largest exact binary suffix, else plain bytes."""
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    v = abs(n)
    for suffix, mult in reversed(_BINARY.items()):
        if v % mult == 0:
            return f"{sign}{v // mult}{suffix}"
    return f"{sign}{v}"
