"""Server-rendered SVG charts: a column chart over time (with an optional line) and horizontal bar rows.

Charts are plain SVG in the page, drawn once on the server: no JavaScript, nothing to download. They
carry classes only (`bar`, `line`, `gridline`, `tick`, ...), so the stylesheet colours them for light and
dark mode; every mark has a `<title>`, which browsers show as a tooltip. Sizes are in viewBox units;
the SVG scales to its card's width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .markup import Markup, concat, number, render

WIDTH: Final = 720
HEIGHT: Final = 240
MARGIN_LEFT: Final = 48
MARGIN_RIGHT: Final = 12
MARGIN_TOP: Final = 14
MARGIN_BOTTOM: Final = 28
Y_TICKS: Final = 4
"""Gridlines above zero, at most."""
MAX_X_LABELS: Final = 8
ROWS_WIDTH: Final = 540
"""Width of `bar_rows`, in viewBox units: about a half-width card's, so its text is drawn near 1:1."""
ROW_HEIGHT: Final = 54
"""Height of one row of `bar_rows`, in viewBox units."""
BAR_HEIGHT: Final = 20


@dataclass(frozen=True, slots=True)
class Series:
    """One value per x label, and what the values are (shown in tooltips)."""

    label: str
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of `bar_rows`: its label, its value (the bar's length), the note at its end and its tooltip."""

    label: str
    value: float
    note: str
    detail: str = ""
    """The tooltip (after the label); the note when empty."""


def nice_scale(highest: float, ticks: int = Y_TICKS) -> tuple[float, float]:
    """(step, top) of an axis from 0 that shows `highest` with at most `ticks` round steps (1, 2, 5 × 10ⁿ)."""
    if highest <= 0:
        return 1.0, 1.0
    raw = highest / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0) if highest >= 1 else step
    return step, step * math.ceil(highest / step)


def _axis_label(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return number(value)


def _fmt(value: float) -> str:
    """A coordinate with at most one decimal."""
    return f"{value:.1f}".removesuffix(".0")


def column_chart(labels: Sequence[str], columns: Series, line: Series | None = None, *, title: str) -> Markup:
    """Columns for `columns` over the x `labels`, `line` drawn over them, with a y axis and gridlines."""
    count = len(labels)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    bottom = MARGIN_TOP + plot_h
    highest = max([*columns.values, *(line.values if line else ()), 0.0])
    step, top = nice_scale(highest)

    def y(value: float) -> float:
        return bottom - value / top * plot_h

    parts: list[Markup] = []
    for i in range(int(round(top / step)) + 1):
        tick = i * step
        parts.append(
            render(
                '<line class="gridline" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>'
                '<text class="tick" x="{tx}" y="{ty}" text-anchor="end">{label}</text>',
                x1=MARGIN_LEFT,
                x2=WIDTH - MARGIN_RIGHT,
                y=_fmt(y(tick)),
                tx=MARGIN_LEFT - 8,
                ty=_fmt(y(tick) + 4),
                label=_axis_label(tick),
            )
        )
    slot = plot_w / max(count, 1)
    bar_w = min(slot * 0.7, 40.0)
    every = max(1, math.ceil(count / MAX_X_LABELS))
    for i, label in enumerate(labels):
        center = MARGIN_LEFT + slot * (i + 0.5)
        value = columns.values[i]
        parts.append(
            render(
                '<rect class="bar" x="{x}" y="{y}" width="{w}" height="{h}" rx="2">'
                "<title>{label} · {what}: {value}</title></rect>",
                x=_fmt(center - bar_w / 2),
                y=_fmt(y(value)),
                w=_fmt(bar_w),
                h=_fmt(bottom - y(value)),
                label=label,
                value=number(value),
                what=columns.label,
            )
        )
        if i % every == 0:
            parts.append(
                render(
                    '<text class="tick" x="{x}" y="{y}" text-anchor="middle">{label}</text>',
                    x=_fmt(center),
                    y=HEIGHT - 8,
                    label=label,
                )
            )
    if line is not None and count:
        points = [(MARGIN_LEFT + slot * (i + 0.5), y(v)) for i, v in enumerate(line.values)]
        parts.append(
            render(
                '<polyline class="line" points="{points}"/>', points=" ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in points)
            )
        )
        for (px, py), label, value in zip(points, labels, line.values, strict=True):
            parts.append(
                render(
                    '<circle class="dot" cx="{x}" cy="{y}" r="3"><title>{label} · {what}: {value}</title></circle>',
                    x=_fmt(px),
                    y=_fmt(py),
                    label=label,
                    value=number(value),
                    what=line.label,
                )
            )
    return render(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">{body}</svg>',
        w=WIDTH,
        h=HEIGHT,
        title=title,
        body=concat(parts),
    )


def bar_rows(bars: Sequence[Bar], *, title: str) -> Markup:
    """One horizontal bar per row, as long as its share of the largest value, labelled above, noted at the end."""
    highest = max((bar.value for bar in bars), default=0.0) or 1.0
    parts: list[Markup] = []
    for i, bar in enumerate(bars):
        top = i * ROW_HEIGHT
        length = ROWS_WIDTH * max(bar.value, 0.0) / highest
        parts.append(
            render(
                "<g><title>{label}: {detail}</title>"
                '<text class="label" x="0" y="{ty}">{label}</text>'
                '<text class="note" x="{w}" y="{ty}" text-anchor="end">{note}</text>'
                '<rect class="track" x="0" y="{by}" width="{w}" height="{bh}" rx="5"/>'
                '<rect class="bar" x="0" y="{by}" width="{length}" height="{bh}" rx="5"/></g>',
                ty=top + 15,
                by=top + 23,
                bh=BAR_HEIGHT,
                w=ROWS_WIDTH,
                length=_fmt(length),
                label=bar.label,
                note=bar.note,
                detail=bar.detail or bar.note,
            )
        )
    return render(
        '<svg class="chart rows" viewBox="0 0 {w} {h}" role="img" aria-label="{title}">{body}</svg>',
        w=ROWS_WIDTH,
        h=max(len(bars) * ROW_HEIGHT, 1),
        title=title,
        body=concat(parts),
    )
