from decimal import Decimal

import pytest

from hack.nodeagent.quantity import format_bytes, parse_quantity, to_bytes


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("64Mi", 64 * 2**20),
        ("1Gi", 2**30),
        ("500M", 500_000_000),
        ("1.5Ki", 1536),
        ("100m", Decimal("0.1")),
        ("1e3", 1000),
        ("2E", 2 * 10**18),
        ("7", 7),
        (3, 3),
    ],
)
def test_parse_quantity(text, want):
    assert parse_quantity(text) == want


@pytest.mark.parametrize("bad", ["", "Mi", "1Qi", "abc", "1.2.3"])
def test_parse_quantity_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_to_bytes_rounds_up_fractions():
    assert to_bytes("1500m") == 2


@pytest.mark.parametrize(
    ("n", "want"),
    [
        (0, "0"),
        (64 * 2**20, "64Mi"),
        (70312 * 1024, "70312Ki"),
        (2**30, "1Gi"),
        (1000, "1000"),
        (-2048, "-2Ki"),
    ],
)
def test_format_bytes_like_quantity_string(n, want):
    assert format_bytes(n) == want
