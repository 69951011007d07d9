"""Safe-by-default HTML: every value put into a template is escaped unless it is already `Markup`.

`render("<td>{name}</td>", name=tool)` escapes `tool`; fragments built by `render` (or `concat`) are
`Markup` and pass through unchanged, so a page is assembled from escaped pieces without a template
engine. Also the number and time formats the page uses, in one place.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime


class Markup(str):
    """Text that is already HTML, rendered as is."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """`value` as HTML text: `Markup` unchanged, anything else `str()`-ed and escaped (quotes included)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def render(template: str, /, **values: object) -> Markup:
    """`template` with each `{name}` replaced by the escaped `values[name]`."""
    return Markup(template.format_map({name: escape(value) for name, value in values.items()}))


def concat(parts: Iterable[object]) -> Markup:
    """The parts, each escaped unless `Markup`, joined."""
    return Markup("".join(escape(part) for part in parts))


def number(value: object) -> str:
    """A count with thousands separators; a non-number (missing) as an em dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def counted(value: object, noun: str) -> str:
    """A count and its noun, plural unless the count is 1: `1 call`, `3 calls`."""
    return f"{number(value)} {noun if value == 1 else noun + 's'}"


def millis(value: object) -> str:
    """A latency in ms: `0.42 ms`, `12.3 ms`, `1,234 ms`, `2.5 s`; missing as an em dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def percent(ratio: object) -> str:
    """A ratio 0–1 as a percentage with one decimal: `0.125` -> `12.5%`; missing as an em dash."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        return "—"
    return f"{ratio * 100:.1f}%"


def clock(ms: int, pattern: str) -> str:
    """A time in ms since the epoch, in UTC, as `pattern` (strftime) says: `%H:%M` -> `09:30`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(pattern)


def timestamp(ms: object) -> str:
    """A time in ms since the epoch as `2026-01-01 09:30 UTC`; missing as an em dash."""
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return "—"
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "—"
