"""Rollup reads are exact for any window: whole hours from the rollups plus the partial hours from
the events give the same answers as counting every event, checked against a brute-force count on
random data and random windows that start and end mid-hour."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from starlette.applications import Starlette

from mcp_gateway.analytics import Asked, rollups, site, traffic
from mcp_gateway.analytics.rollups import (
    DAYS,
    HOURS,
    Split,
    activity,
    counts_by,
    counts_by_name,
    event_series,
    session_counts,
    split,
)
from mcp_gateway.analytics.site import SourcesArgs
from mcp_gateway.analytics.window import TimeWindow, WindowArgs
from mcp_gateway.store import EventRow, histogram, sketch
from mcp_gateway.store.session_counts import SESSION_COLUMNS, SKETCHED, Tally, contributions, facts_of
from mcp_gateway.store.session_rollup import referrer_host

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, seed, store_of, web_event

CLIENTS = ("claude-desktop 1.0", "cursor 1.2")


def random_data(rng: random.Random) -> tuple[list[EventRow], dict[str, str]]:
    sessions = {f"s{i}": CLIENTS[i % 2] for i in range(6)}
    events: list[EventRow] = []
    for _ in range(400):
        ts = T0 + rng.randrange(2 * DAY)
        if rng.random() < 0.4:
            events.append(mcp_call(rng.choice(list(sessions)), rng.choice(["search", "book_demo"]), ts, 5.0))
        else:
            events.append(
                web_event(
                    rng.choice(["page_view", "signup"]),
                    ts,
                    visitor=f"v{rng.randrange(30)}",
                    path=rng.choice(["/", "/pricing", None]),
                    referrer=rng.choice([None, "https://www.google.com/x", "https://news.ycombinator.com/"]),
                    country=rng.choice(["DE", "FR", None]),
                )
            )
    return events, sessions


async def test_rollup_reads_equal_a_count_of_every_event(app: Starlette) -> None:
    rng = random.Random(7)
    events, sessions = random_data(rng)
    await seed(app, sessions=[mcp_session(s, T0, client=c) for s, c in sessions.items()], events=events)
    store = store_of(app)
    stored = {(e.id): e for e in events}
    rows = await store.fetch("SELECT id, session_id FROM events")
    session_of = {event_id: sid for event_id, sid in rows}  # web sessions are derived by the writer

    windows = [TimeWindow(T0, T0 + 2 * DAY)] + [
        TimeWindow(a, a + rng.randrange(MINUTE, DAY)) for a in (T0 + rng.randrange(DAY) for _ in range(8))
    ]
    windows.append(TimeWindow(T0 + 10 * MINUTE, T0 + 20 * MINUTE))  # inside one hour: no whole hours
    for window in windows:
        inside = [e for e in stored.values() if window.since_ms <= e.ts_ms < window.until_ms]
        paths = Counter(e.web.path for e in inside if e.web and e.web.path)
        hosts = Counter(h for e in inside if e.web and (h := referrer_host(e.web.referrer)))
        clients = Counter(sessions[e.session_id] for e in inside if e.source == "mcp" and e.session_id)
        names = Counter((e.source, e.name) for e in inside)
        per_day = Counter(e.ts_ms - e.ts_ms % DAY for e in inside)
        actors = {e.web.anonymous_id for e in inside if e.web and e.web.anonymous_id}
        session_ids = {session_of[e.id] for e in inside if session_of[e.id]}

        assert await counts_by(store, "demo", window, "path") == paths
        assert await counts_by(store, "demo", window, "referrer_host") == hosts
        assert await counts_by(store, "demo", window, "client") == clients
        assert await counts_by_name(store, "demo", window) == names
        assert await event_series(store, "demo", window, DAY) == per_day
        [total] = await activity(store, "demo", window)
        assert (total.actors, total.sessions) == (len(actors), len(session_ids))
        daily = {a.bucket_ms: (a.actors, a.sessions) for a in await activity(store, "demo", window, bucket_ms=DAY)}
        on_day = {day: [e for e in inside if e.ts_ms - e.ts_ms % DAY == day] for day in per_day}
        assert daily == {
            day: (
                len({e.web.anonymous_id for e in day_events if e.web and e.web.anonymous_id}),
                len({session_of[e.id] for e in day_events}),
            )
            for day, day_events in on_day.items()
        }


def test_a_window_splits_into_whole_days_whole_hours_and_partial_edges() -> None:
    window = TimeWindow(T0 - 90 * MINUTE, T0 + 2 * DAY + 3 * HOUR + 15 * MINUTE)

    parts = split(window)

    assert parts.rollups == (
        (DAYS, TimeWindow(T0, T0 + 2 * DAY)),
        (HOURS, TimeWindow(T0 - HOUR, T0)),
        (HOURS, TimeWindow(T0 + 2 * DAY, T0 + 2 * DAY + 3 * HOUR)),
    )
    assert parts.edges == (
        TimeWindow(T0 - 90 * MINUTE, T0 - HOUR),
        TimeWindow(T0 + 2 * DAY + 3 * HOUR, T0 + 2 * DAY + 3 * HOUR + 15 * MINUTE),
    )
    assert split(window, days=False).rollups == ((HOURS, TimeWindow(T0 - HOUR, T0 + 2 * DAY + 3 * HOUR)),)
    assert split(TimeWindow(T0 + MINUTE, T0 + 2 * MINUTE)) == Split((), (TimeWindow(T0 + MINUTE, T0 + 2 * MINUTE),))


async def test_large_windows_estimate_distinct_counts_from_sketches(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    events = [
        web_event("page_view", T0 + rng.randrange(3 * DAY), visitor=f"v{rng.randrange(600)}", session=f"s{i % 900}")
        for i in range(2000)
    ]
    await seed(app, events=events)
    store = store_of(app)
    window = TimeWindow(T0 - HOUR, T0 + 3 * DAY)
    [exact] = await activity(store, "demo", window)
    exact_daily = await activity(store, "demo", window, bucket_ms=DAY)
    exact_hourly = await activity(store, "demo", window, bucket_ms=HOUR)
    monkeypatch.setattr(rollups, "EXACT_BELOW", 10)  # as if this were a big site

    [estimated] = await activity(store, "demo", window)
    estimated_daily = await activity(store, "demo", window, bucket_ms=DAY)
    estimated_hourly = await activity(store, "demo", window, bucket_ms=HOUR)

    tolerance = 4 * sketch.STANDARD_ERROR  # a 4-sigma bound: fails by chance about once in 15,000 data sets
    assert (exact.actors, exact.sessions) == (len({e.web.anonymous_id for e in events if e.web}), 900)
    assert abs(estimated.actors - exact.actors) <= tolerance * exact.actors
    assert abs(estimated.sessions - exact.sessions) <= tolerance * exact.sessions
    assert [a.bucket_ms for a in estimated_daily] == [a.bucket_ms for a in exact_daily]
    for guess, truth in zip(estimated_daily, exact_daily, strict=True):
        assert abs(guess.actors - truth.actors) <= tolerance * truth.actors
    assert [a.bucket_ms for a in estimated_hourly] == [a.bucket_ms for a in exact_hourly]
    for guess, truth in zip(estimated_hourly, exact_hourly, strict=True):  # ~20 a bucket: linear counting, near exact
        assert abs(guess.actors - truth.actors) <= 1 and abs(guess.sessions - truth.sessions) <= 1


def test_merging_sketches_is_the_register_wise_maximum() -> None:
    rng = random.Random(1)
    for count in (1, 2, 3, 5):
        sketches = [bytes(rng.randrange(54) for _ in range(sketch.REGISTERS)) for _ in range(count)]
        assert sketch.merge(sketches) == bytes(map(max, *sketches)) if count > 1 else sketches[0]
    assert sketch.merge([]) == sketch.EMPTY


def test_a_sketch_estimates_within_its_stated_error() -> None:
    for n in (10, 1_000, 50_000):
        registers = sketch.add(sketch.EMPTY, (sketch.position(f"visitor-{i}") for i in range(n)))
        assert abs(sketch.estimate(registers) - n) <= 4 * sketch.STANDARD_ERROR * n


def test_a_sketch_estimate_is_the_hyperloglog_formula_whatever_its_fill() -> None:
    def reference(registers: bytes) -> int:  # Flajolet et al., with linear counting for small counts
        m = sketch.REGISTERS
        empty = registers.count(0)
        if empty == m:
            return 0
        raw = 0.7213 / (1 + 1.079 / m) * m * m / sum(2.0**-rank for rank in registers)
        return round(m * math.log(m / empty)) if raw <= 2.5 * m and empty else round(raw)

    rng = random.Random(2)
    registers = bytearray(sketch.EMPTY)
    for filled in range(0, sketch.REGISTERS + 1, 97):  # across the switch from linear counting to the raw estimate
        for index in range(filled):
            registers[index] = registers[index] or rng.choice((1, 1, 2, 3, 5, 53))
        assert sketch.estimate(bytes(registers)) == reference(bytes(registers))


async def test_session_counts_equal_a_count_of_every_overlapping_session(app: Starlette) -> None:
    rng = random.Random(13)
    events, sessions = random_data(rng)
    await seed(app, sessions=[mcp_session(s, T0, client=c) for s, c in sessions.items()], events=events)
    store = store_of(app)
    every = facts_of(await store.fetch(f"SELECT {SESSION_COLUMNS} FROM sessions"))
    windows = [TimeWindow(T0 - 3 * HOUR, T0 + 2 * DAY + HOUR), TimeWindow(T0 + 7 * HOUR, T0 + 2 * DAY)]
    windows += [TimeWindow(a, a + rng.randrange(HOUR, 2 * DAY)) for a in (T0 + rng.randrange(DAY) for _ in range(6))]
    for window in windows:
        overlapping = [s for s in every if s.started_ms < window.until_ms and s.last_ms >= window.since_ms]
        for dimension in ("length", "country", "landing", "referrer", "entry", "exit", "client"):
            for source in (None, "web", "mcp"):
                expected: dict[str, Tally] = {}
                actors: dict[str, set[str]] = {}
                for row in overlapping:
                    for key, tally in contributions(row):
                        if key.dimension == dimension and source in (None, key.source):
                            expected.setdefault(key.value, Tally()).add(tally)
                            actors.setdefault(key.value, set()).update([row.actor] if row.actor else [])

                [counted] = (await session_counts(store, "demo", window, dimension, source=source)).values()

                assert {value: count.tally for value, count in counted.items()} == expected
                if dimension in SKETCHED:  # small counts: the sketches' linear counting is exact here
                    assert {value: count.visitors() for value, count in counted.items()} == {
                        value: len(found) for value, found in actors.items()
                    }


async def test_large_windows_answer_session_questions_from_session_counts(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above `EXACT_BELOW` sessions (or page views), geo, sources and top pages estimate visitors from the day
    sketches and the session length median comes from log buckets: the same sessions and views, visitors within
    the sketches' error, the median within the histogram's."""
    rng = random.Random(17)
    events = [
        web_event(
            "page_view",
            T0 + rng.randrange(3 * DAY),
            visitor=f"v{rng.randrange(300)}",
            session=f"s{i % 500}",
            country=rng.choice(["DE", "FR", "US", None]),
            traffic_source=rng.choice(["google", "hn", None]),
            referrer=rng.choice(["https://www.google.com/", None]),
            path=rng.choice(["/", "/pricing", "/docs", None]),
        )
        for i in range(1500)
    ]
    await seed(app, events=events)
    asked = Asked(store_of(app), "demo", T0 + 4 * DAY)
    window = {"since": T0 - HOUR, "until": T0 + 3 * DAY + HOUR}

    async def answers() -> tuple[site.Geo, site.Sources, traffic.DistributionAnswer, site.TopPages]:
        return (
            await site.geo(asked, WindowArgs.model_validate(window)),
            await site.sources(asked, SourcesArgs.model_validate(window)),
            await traffic.distribution(asked, traffic.SessionSourceArgs.model_validate(window)),
            await site.top_pages(asked, site.TopPagesArgs.model_validate(window)),
        )

    exact_geo, exact_sources, exact_lengths, exact_pages = await answers()
    for module in (site, traffic):
        monkeypatch.setattr(module, "EXACT_BELOW", 1)
    geo, sources, lengths, pages = await answers()

    tolerance = 4 * sketch.STANDARD_ERROR
    for guess, truth in zip(geo.countries, exact_geo.countries, strict=True):
        assert (guess.country, guess.sessions) == (truth.country, truth.sessions)
        assert abs(guess.visitors - truth.visitors) <= max(1, tolerance * truth.visitors)
    assert [(s.source, s.medium, s.sessions, s.referrer_host) for s in sources.sources] == [
        (s.source, s.medium, s.sessions, s.referrer_host) for s in exact_sources.sources
    ]
    for page, exact_page in zip(pages.pages, exact_pages.pages, strict=True):
        assert (page.path, page.views) == (exact_page.path, exact_page.views)
        assert abs(page.unique_visitors - exact_page.unique_visitors) <= max(1, tolerance * exact_page.unique_visitors)
    assert lengths.buckets == exact_lengths.buckets
    assert lengths.median_ms == pytest.approx(exact_lengths.median_ms, rel=histogram.RELATIVE_ERROR)
