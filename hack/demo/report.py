"""Formatting for the demo's terminal output (pure)."""

from __future__ import annotations


def human(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def rate(bps: float | None) -> str:
    return "-" if not bps else f"{human(bps)}/s"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def progress_line(name: str, phase: str, done: int | None, total: int | None, bps: float | None) -> str:
    pct = f" {100 * done / total:5.1f}%" if done is not None and total else ""
    moved = f"{human(done)} / {human(total)}{pct}" if done is not None else "-"
    return f"{name:<18} {phase:<36} {moved:<30} {rate(bps)}"
