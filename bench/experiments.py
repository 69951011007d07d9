"""How long `GET /experiments/{id}` takes to answer with live results over 1M events (goal: < 100 ms).

The data: `--events` web events of gateway `demo` over 30 days, in a SQLite database made by the gateway's own
migrations: `--visitors` visitors, each exposed once to a two-variant experiment (`$experiment_exposure`),
about 10% of them sending the goal event (tagged with their variant, as tracker.js does), and page views
(tagged too) for the rest. Rows go in through the store's own write path (`capture_web`), so the writer keeps
every rollup, the experiments' (`store.experiment_users`) included, as in production. The app then answers
`GET /experiments/{id}` in process (httpx over ASGI: routing, the read key, the query, the statistics, JSON),
`--runs` times after one warm-up; the script prints the median, p90 and max, and checks the answer's totals
against the generated counts.

    .venv/bin/python bench/experiments.py                        # about 7 minutes on 2 CPUs (writing 1M events)
    .venv/bin/python bench/experiments.py --events 200000 --runs 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx

from mcp_gateway import Settings, create_app
from mcp_gateway.experiments.assignment import assign
from mcp_gateway.store import EventRow, Store, WebFields, sqlstore
from mcp_gateway.vocabulary import EXPERIMENT_EXPOSURE, EXPERIMENTS

ADMIN_TOKEN: Final = "bench-admin-token-0123456789abcdef"
ADMIN: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GOAL: Final = "signup_complete"
DAY_MS: Final = 24 * 3600 * 1000
RATES: Final = {"control": 0.09, "new_cta": 0.11}
BATCH: Final = 5000


def rows(experiment_id: str, events: int, visitors: int, start_ms: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """(id, anonymous_id, name, properties, ts_ms) of every event, visitor by visitor."""
    rng = random.Random(seed)
    per_visitor = max(1, events // visitors)
    made = 0
    for n in range(visitors):
        visitor = f"v{n:08d}"
        variant = assign(experiment_id, visitor, list(RATES), [1.0, 1.0])
        ts = start_ms + rng.randrange(29 * DAY_MS)
        tag = {EXPERIMENTS: {experiment_id: variant}}
        names = [EXPERIMENT_EXPOSURE] + ["PageView"] * (per_visitor - 1)
        if rng.random() < RATES[variant] and per_visitor > 1:
            names[-1] = GOAL
        for i, name in enumerate(names):
            made += 1
            properties = {"experiment": experiment_id, "variant": variant} if i == 0 else tag
            yield (f"e{made}", visitor, name, properties, ts + i * 1000)
    while made < events:  # the remainder: untagged page views
        made += 1
        yield (f"e{made}", f"w{made}", "PageView", None, start_ms + rng.randrange(29 * DAY_MS))


async def fill(store: Store, generated: Iterator[tuple[Any, ...]]) -> tuple[int, dict[str, int]]:
    """Store the events through the store's write path (`capture_web`, the writer folds them into the rollups, the
    experiments' included), `BATCH` at a time; how many, and how many of each name."""
    counts: dict[str, int] = {}
    total = 0
    batch: list[EventRow] = []
    for event_id, visitor, name, properties, ts in generated:
        counts[name] = counts.get(name, 0) + 1
        batch.append(
            EventRow(
                gateway_id="demo",
                id=event_id,
                source="web",
                session_id=f"s-{visitor}",
                name=name,
                primitive_type=None,
                operation=None,
                latency_ms=None,
                success=None,
                error_type=None,
                args=None,
                result=None,
                properties=properties,
                ts_ms=ts,
                received_at_ms=ts,
                web=WebFields(anonymous_id=visitor),
            )
        )
        if len(batch) == BATCH:
            total += len(await store.capture_web(batch))
            batch = []
    if batch:
        total += len(await store.capture_web(batch))
    return total, counts


FOLD_SECONDS: list[float] = [0.0]
"""Time the writer spent in the experiments' fold (`store.experiment_users`), of the whole write."""


def _timed_fold() -> None:
    """Count the writer's time in `add_to_experiment_users` (what the experiments add to every write)."""
    name = "add_to_experiment_users"  # as the writer's fold_batch finds it, in sqlstore's namespace
    fold = getattr(sqlstore, name)

    def timed(conn: Any, events: Any) -> None:
        began = time.perf_counter()
        fold(conn, events)
        FOLD_SECONDS[0] += time.perf_counter() - began

    setattr(sqlstore, name, timed)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes (default: a temp dir)")
    args = parser.parse_args()
    _timed_fold()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db_path = Path(tmp) / "gateway.db"
        app = create_app(Settings(db_path=db_path, admin_token=ADMIN_TOKEN, retention_days=0))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http,
        ):
            created = await http.post(
                "/experiments",
                json={"project": "demo", "name": "cta", "variants": list(RATES), "goal_event": GOAL},
                headers=ADMIN,
            )
            experiment = created.json()
            key = (await http.post("/v1/gateways/demo/keys", json={"kind": "read"}, headers=ADMIN)).json()["key"]
            started = time.perf_counter()
            start_ms = experiment["created_at"] - 1000  # events from the experiment's creation on count
            store: Store = app.state.services.store
            total, counts = await fill(store, rows(experiment["id"], args.events, args.visitors, start_ms + 1000, 7))
            elapsed = time.perf_counter() - started
            print(f"generated {total:,} events in {elapsed:.1f} s: {counts}")
            print(
                f"  of which the writer's experiments fold: {FOLD_SECONDS[0]:.1f} s ({FOLD_SECONDS[0] / elapsed:.1%})"
            )

            url, headers = f"/experiments/{experiment['id']}", {"X-API-Key": key}
            answer = (await http.get(url, headers=headers)).json()  # warm-up
            timings = []
            for _ in range(args.runs):
                began = time.perf_counter()
                response = await http.get(url, headers=headers)
                timings.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, response.text
            results = answer["results"]
            assert results["total_exposures"] == counts[EXPERIMENT_EXPOSURE], results
            assert results["total_conversions"] == counts.get(GOAL, 0), results
            timings.sort()
            print(
                f"GET /experiments/{{id}} at {total:,} events ({results['total_users']:,} exposed users,"
                f" {results['total_conversions']:,} conversions), {args.runs} runs: median"
                f" {statistics.median(timings):.1f} ms, p90 {timings[int(0.9 * (len(timings) - 1))]:.1f} ms,"
                f" max {timings[-1]:.1f} ms (goal < 100 ms)"
            )
            for row in results["variants"]:
                print(
                    f"  {row['variant']:<8} users {row['unique_users']:>7,} conversions {row['conversions']:>6,}"
                    f" rate {row['conversion_rate']:.4f} p {row['p_value']}"
                    f" P(beat) {row['probability_to_beat_control']}"
                )


if __name__ == "__main__":
    asyncio.run(main())
