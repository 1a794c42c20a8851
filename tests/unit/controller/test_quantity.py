import pytest

from controller.model.quantity import format_quantity, parse_duration, parse_quantity, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512Mi", 512 * 1024**2),
        ("20Gi", 20 * 1024**3),
        ("1G", 10**9),
        ("100", 100),
        ("1.5Gi", 1610612736),
        ("70312Ki", 70312 * 1024),
        ("500m", 1),
        ("1500m", 2),
    ],
)
def test_parse_quantity(text: str, value: int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "12XB", "-1Gi", "1 Gi"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1024**3, "1Gi"), (96 * 1024**2, "96Mi"), (1536, "1536"), (2048, "2Ki"), (0, "0"), (-2048, "-2Ki")],
)
def test_format_quantity(value: int, text: str) -> None:
    assert format_quantity(value) == text


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h0m0s", 3600), ("0s", 0), ("90s", 90), ("1m30s", 90), ("500ms", 0.5), ("0", 0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "abc", "1h x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("64M", 64 << 20),
        ("64Mi", 64 << 20),
        ("64MB", 64 << 20),
        ("1g", 1 << 30),
        ("1.5K", 1536),
    ],
)
def test_parse_size_is_binary(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "12X", "-5M", "1 2M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
