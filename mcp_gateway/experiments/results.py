"""An experiment's live results, from its write-time rollup (`store.experiment_users`: a row per variant with
the sums of a row per visitor), and the statistics of `stats`.

    unique_users   visitors with an event of the experiment's in that variant: an exposure, or any event tagged
                   with the variant (they were assigned)
    exposures      `$experiment_exposure` events (tracker.js sends one per visitor)
    conversions    of those visitors, the ones who sent the goal event tagged with the variant; and the goal
                   events themselves (`conversion_events`)

Events count from the experiment's creation on; variants an event names that the experiment lacks are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..store import Store
from . import stats
from .models import Flag, Interval, Results, SampleRatio, VariantResult
from .repository import ExperimentRecord

MINIMUM_USERS_PER_VARIANT: Final = 100
"""The fewest exposed visitors per variant before `significant` may be true: the fixed horizon's floor."""
NO_CONVERSIONS_AFTER_MS: Final = 48 * 3600 * 1000
"""Seed 002's anomaly flag: no goal conversion in any variant this long after creation."""
SIGNIFICANCE: Final = 0.05
METHOD: Final = (
    "Per variant against the control: Wilson interval of the rate, Newcombe interval of the difference, pooled "
    "two-proportion z-test (two-sided), and P(beats control) from Beta(1+conversions, 1+users-conversions) "
    "posteriors, exact. Fixed horizon: read `significant` once every variant has the sample size you planned "
    "(at least minimum_users_per_variant), not each time you look. Sample-ratio mismatch: chi-square test of users "
    "per variant against the split, flagged below p = 0.001."
)


@dataclass(frozen=True, slots=True)
class Counts:
    exposures: int = 0
    users: int = 0
    conversions: int = 0
    conversion_events: int = 0


async def variant_counts(store: Store, record: ExperimentRecord) -> dict[str, Counts]:
    """Exposures, users, converted users and goal events per variant of the experiment."""
    rows = await store.fetch(
        "SELECT variant, exposures, users, converted_users, conversions FROM experiment_variants"
        " WHERE gateway_id = ? AND experiment_id = ?",
        (record.gateway_id, record.id),
    )
    counts = {variant: Counts() for variant in record.variants}
    for variant, exposures, users, conversions, conversion_events in rows:
        if variant in counts:
            counts[variant] = Counts(int(exposures), int(users), int(conversions), int(conversion_events))
    return counts


def _interval(bounds: tuple[float, float] | None) -> Interval | None:
    return None if bounds is None else Interval(bounds[0], bounds[1], stats.CONFIDENCE)


def compare(record: ExperimentRecord, counts: dict[str, Counts]) -> Results:
    """The statistics of every variant against the control (the first variant), and the sample-ratio test."""
    control = record.variants[0]
    base = counts[control]
    reached = all(counts[variant].users >= MINIMUM_USERS_PER_VARIANT for variant in record.variants)
    variants: list[VariantResult] = []
    for variant in record.variants:
        mine = counts[variant]
        rate = min(mine.conversions, mine.users) / mine.users if mine.users else None
        base_rate = min(base.conversions, base.users) / base.users if base.users else None
        is_control = variant == control
        compared = not is_control and rate is not None and base_rate is not None
        p_value = stats.two_proportion_p(mine.conversions, mine.users, base.conversions, base.users)
        variants.append(
            VariantResult(
                variant=variant,
                is_control=is_control,
                exposures=mine.exposures,
                unique_users=mine.users,
                conversions=mine.conversions,
                conversion_events=mine.conversion_events,
                conversion_rate=rate,
                conversion_rate_interval=_interval(stats.wilson(mine.conversions, mine.users)),
                difference=rate - base_rate if compared and rate is not None and base_rate is not None else None,
                confidence_interval=None
                if is_control
                else _interval(stats.newcombe(mine.conversions, mine.users, base.conversions, base.users)),
                lift=(rate - base_rate) / base_rate if compared and rate is not None and base_rate else None,
                p_value=None if is_control else p_value,
                probability_to_beat_control=None
                if is_control or not compared
                else stats.probability_beats(mine.conversions, mine.users, base.conversions, base.users),
                significant=not is_control and reached and p_value is not None and p_value < SIGNIFICANCE,
            )
        )
    return Results(
        control=control,
        variants=variants,
        total_exposures=sum(c.exposures for c in counts.values()),
        total_users=sum(c.users for c in counts.values()),
        total_conversions=sum(c.conversions for c in counts.values()),
        sample_ratio=_sample_ratio(record, counts),
        minimum_users_per_variant=MINIMUM_USERS_PER_VARIANT,
        sample_size_reached=reached,
        method=METHOD,
    )


def _sample_ratio(record: ExperimentRecord, counts: dict[str, Counts]) -> SampleRatio:
    users = [counts[variant].users for variant in record.variants]
    total_users, total_weight = sum(users), sum(record.weights)
    p_value = stats.sample_ratio_p(users, record.weights)
    return SampleRatio(
        p_value=p_value,
        mismatch=p_value is not None and p_value < stats.SRM_P_THRESHOLD,
        expected={v: w / total_weight for v, w in zip(record.variants, record.weights, strict=True)},
        observed={v: (n / total_users if total_users else 0.0) for v, n in zip(record.variants, users, strict=True)},
    )


def flags(record: ExperimentRecord, results: Results, *, now_ms: int) -> list[Flag]:
    """What to surface: seed 002's "no goal conversions after 48 h", and a sample-ratio mismatch."""
    found: list[Flag] = []
    if results.total_conversions == 0 and now_ms - record.created_at_ms >= NO_CONVERSIONS_AFTER_MS:
        found.append(
            Flag(
                "no_goal_conversions",
                f"No variant has a {record.goal_event!r} conversion after 48 hours: the goal_event is likely"
                " misconfigured (its name, or events not tagged with the variant)",
            )
        )
    if results.sample_ratio.mismatch:
        found.append(
            Flag(
                "sample_ratio_mismatch",
                f"Users per variant do not match the traffic split (chi-square p = {results.sample_ratio.p_value:.2g}"
                " < 0.001): check assignment, redirects and bot traffic before reading the results",
            )
        )
    return found
