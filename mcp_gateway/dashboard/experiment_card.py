"""The dashboard's A/B experiments card: the active experiments' answers of `GET /experiments/{id}`, a row per
variant (users, conversions, rate, lift, P(beats control)) and the experiment's flags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .answers import Unavailable
from .markup import Markup, concat, number, percent, render
from .sections import empty, pill, table, unavailable


def _signed_percent(ratio: object) -> str:
    text = percent(ratio)
    return f"+{text}" if isinstance(ratio, int | float) and ratio > 0 else text


def _experiment(answer: Any) -> Markup:
    if isinstance(answer, Unavailable):
        return unavailable(answer)
    rows = [
        (
            concat([render("{v} ", v=row["variant"]), pill("control") if row["is_control"] else Markup("")]),
            number(row["unique_users"]),
            number(row["conversions"]),
            percent(row["conversion_rate"]),
            _signed_percent(row["lift"]),
            percent(row["probability_to_beat_control"]),
            pill("significant", "good") if row["significant"] else Markup("—"),
        )
        for row in answer["results"]["variants"]
    ]
    flags = concat(render('<p class="empty unavailable">{m}</p>', m=flag["message"]) for flag in answer["flags"])
    return concat(
        [
            render(
                '<h3 class="experiment">{name} <span class="muted">goal: {goal}</span></h3>',
                name=answer["name"],
                goal=answer["goal_event"],
            ),
            flags,
            table(["Variant", "Users", "Conversions", "Rate", "Lift", "P(beats control)", ""], rows),
        ]
    )


def experiments_card(listing: Any, details: Mapping[str, Any]) -> Markup:
    """/experiments (active ones) and each one's `/experiments/{id}` answer, by id."""
    if isinstance(listing, Unavailable):
        return unavailable(listing)
    if not listing["experiments"]:
        return empty("No active experiments. Create one with POST /experiments.")
    return concat(_experiment(details[experiment["id"]]) for experiment in listing["experiments"])
