"""The statistics of an A/B experiment, from scipy: one variant against the control, and the exposure split.

    wilson(c, n)                   the Wilson score interval of one conversion rate (`scipy.stats.binomtest`)
    newcombe(c, n, c0, n0)         Newcombe's hybrid score interval of the difference of two rates (method 10 of
                                   Newcombe 1998), built from the two Wilson intervals
    two_proportion_p(c, n, c0, n0) the two-sided p-value of the pooled two-proportion z-test (`scipy.stats.norm`)
    probability_beats(c, n, c0, n0) P(rate > control's rate) under independent Beta(1 + c, 1 + n - c) posteriors
                                   (uniform priors), exactly: Evan Miller's closed form, summed in log space with
                                   `scipy.special.betaln`
    sample_ratio_p(observed, weights) the p-value of Pearson's chi-square test of the users per variant against the
                                   configured split (`scipy.stats.chisquare`): a sample-ratio mismatch below
                                   `SRM_P_THRESHOLD`

Every function answers None where its statistic is undefined (no users, no variance), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
from scipy import special, stats

CONFIDENCE: Final = 0.95
"""The level of every interval."""
SRM_P_THRESHOLD: Final = 0.001
"""A sample-ratio mismatch is flagged below this p-value (PostHog's and GrowthBook's threshold)."""


def wilson(conversions: int, users: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of `conversions / users`."""
    if users <= 0:
        return None
    interval = stats.binomtest(min(conversions, users), users).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def newcombe(
    conversions: int, users: int, control_conversions: int, control_users: int, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Newcombe's interval of `rate - control rate` (each rate's Wilson interval combined, no continuity correction)."""
    mine = wilson(conversions, users, confidence)
    theirs = wilson(control_conversions, control_users, confidence)
    if mine is None or theirs is None:
        return None
    p1, p0 = min(conversions, users) / users, min(control_conversions, control_users) / control_users
    (l1, u1), (l0, u0) = mine, theirs
    difference = p1 - p0
    return (
        difference - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
        difference + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2),
    )


def two_proportion_p(conversions: int, users: int, control_conversions: int, control_users: int) -> float | None:
    """Two-sided p-value of the pooled z-test of `rate == control rate`; None without users or without variance."""
    if users <= 0 or control_users <= 0:
        return None
    c1, c0 = min(conversions, users), min(control_conversions, control_users)
    pooled = (c1 + c0) / (users + control_users)
    variance = pooled * (1 - pooled) * (1 / users + 1 / control_users)
    if variance <= 0:
        return None
    z = (c1 / users - c0 / control_users) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def probability_beats(conversions: int, users: int, control_conversions: int, control_users: int) -> float:
    """P(p > p0) for p ~ Beta(1 + c, 1 + n - c) and p0 ~ Beta(1 + c0, 1 + n0 - c0), independent:

        sum over i < a of B(a0 + i, b0 + b) / ((b + i) B(1 + i, b) B(a0, b0))

    with a = 1 + c, b = 1 + n - c (and a0, b0 the control's): one term per conversion, each positive."""
    c, c0 = min(conversions, users), min(control_conversions, control_users)
    a, b = 1 + c, 1 + max(users, 0) - c
    a0, b0 = 1 + c0, 1 + max(control_users, 0) - c0
    i = np.arange(a, dtype=np.float64)
    terms = special.betaln(a0 + i, b0 + b) - np.log(b + i) - special.betaln(1 + i, b) - special.betaln(a0, b0)
    return float(min(1.0, max(0.0, np.exp(special.logsumexp(terms)))))


def sample_ratio_p(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """The chi-square test's p-value of `observed` users per variant against the split `weights`; None without users."""
    total = sum(observed)
    if total <= 0 or len(observed) < 2:
        return None
    weight_sum = sum(weights)
    expected = [total * weight / weight_sum for weight in weights]
    return float(stats.chisquare(list(observed), expected).pvalue)
