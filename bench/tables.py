"""Plain-text tables and side-by-side ratios, shared by the benchmark scripts."""

from __future__ import annotations

import statistics


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def ratio(xs: list[float]) -> str:
    """Per-repeat ratios as `median x [min-max]`; '-' when there are none."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.2f}x"
    return f"{median(xs):.2f}x [{min(xs):.2f}-{max(xs):.2f}]"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to fit; the first left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])
