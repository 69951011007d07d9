"""Seed 002's `/experiments`: the requests and answers of its playbook ("3. Run an A/B Test"), the PATCH rules of
its response tips, its anomaly flag, the statistics checked against formulas computed here (the math module and
`statistics.NormalDist`, not scipy), sample-ratio mismatch, tracker assignment, isolation between gateways, the
MCP tools, and one run over a real socket."""

from __future__ import annotations

import html
import math
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, Final

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway import Settings, create_app
from mcp_gateway.accounts.access import READ_KEY_COOKIE
from mcp_gateway.experiments.assignment import assign
from mcp_gateway.experiments.stats import probability_beats
from mcp_gateway.store import Store

from .support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    DEMO,
    LiveServer,
    admin_json,
    create_key,
    jsonrpc_request,
    lifespan_running,
)

OTHER: Final = "other"
GOAL: Final = "signup_complete"
Z95: Final = NormalDist().inv_cdf(0.975)


@pytest.fixture
def settings(db_path: Path, database_url: str | None) -> Settings:
    """The tests' settings (conftest's), with room for the few thousand events a test sends from one client."""
    return Settings(
        db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN, retention_days=0, track_rate_limit=100_000
    )


def experiment_body(**overrides: Any) -> dict[str, Any]:
    return {"project": DEMO, "name": "signup-cta", "variants": ["control", "new_cta"], "goal_event": GOAL, **overrides}


async def create(http: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await http.post("/experiments", json=experiment_body(**overrides), headers=ADMIN_HEADERS)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def send(http: httpx.AsyncClient, token: str, events: Sequence[dict[str, Any]]) -> None:
    """Seed 002's `/track/batch`, 100 events at a time."""
    for start in range(0, len(events), 100):
        response = await http.post("/track/batch", json={"token": token, "events": list(events[start : start + 100])})
        assert response.status_code == 202, response.text


def exposures_and_goals(
    experiment_id: str, variant: str, users: int, converted: int, *, tag: str = "map"
) -> list[dict[str, Any]]:
    """`users` visitors exposed to `variant`, the first `converted` of them sending the goal event twice, tagged
    the way tracker.js does (`map`) or by hand as seed 002's playbook says (`flat`)."""
    events: list[dict[str, Any]] = []
    for n in range(users):
        visitor = f"{variant}-{n}-{uuid.uuid4().hex[:6]}"
        exposure = {"experiment": experiment_id, "variant": variant}
        events.append({"event": "$experiment_exposure", "anonymous_id": visitor, "properties": exposure})
        events.append(
            {"event": "PageView", "anonymous_id": visitor, "properties": {"$experiments": {experiment_id: variant}}}
        )
        if n < converted:
            tagged = {"$experiments": {experiment_id: variant}} if tag == "map" else exposure
            events += [{"event": GOAL, "anonymous_id": visitor, "properties": tagged}] * 2
    return events


async def results(http: httpx.AsyncClient, key: str, experiment_id: str) -> dict[str, Any]:
    response = await http.get(f"/experiments/{experiment_id}", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def by_variant(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["variant"]: row for row in answer["results"]["variants"]}


# -- independent calculations ---------------------------------------------------------------------------


def wilson_by_hand(c: int, n: int) -> tuple[float, float]:
    p = c / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    return centre - half, centre + half


def z_test_by_hand(c1: int, n1: int, c0: int, n0: int) -> float:
    pooled = (c1 + c0) / (n1 + n0)
    z = (c1 / n1 - c0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return math.erfc(abs(z) / math.sqrt(2))  # = 2 * (1 - Phi(|z|))


def beats_by_integration(c1: int, n1: int, c0: int, n0: int, steps: int = 200_000) -> float:
    """P(p1 > p0) = integral of f1(x) * F0(x) dx, Beta posteriors with uniform priors, by the midpoint rule."""

    def log_pdf(x: float, a: int, b: int) -> float:
        return (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))

    a1, b1, a0, b0 = 1 + c1, 1 + n1 - c1, 1 + c0, 1 + n0 - c0
    width = 1 / steps
    total = cdf0 = 0.0
    for i in range(steps):
        x = (i + 0.5) * width
        f0 = math.exp(log_pdf(x, a0, b0)) * width
        total += math.exp(log_pdf(x, a1, b1)) * width * (cdf0 + f0 / 2)
        cdf0 += f0
    return total


# -- seed 002's requests and answers ---------------------------------------------------------------------


async def test_create_answers_201_with_the_experiment_and_an_equal_split_by_default(http: httpx.AsyncClient) -> None:
    created = await create(http)
    assert created["id"].startswith("exp_")
    assert {k: created[k] for k in ("project", "name", "variants", "goal_event", "status", "winner", "control")} == {
        "project": DEMO,
        "name": "signup-cta",
        "variants": ["control", "new_cta"],
        "goal_event": GOAL,
        "status": "active",
        "winner": None,
        "control": "control",
    }
    assert created["traffic_split"] == {"control": 0.5, "new_cta": 0.5}
    assert created["created_at"] == created["updated_at"]


async def test_a_traffic_split_is_kept_as_shares(http: httpx.AsyncClient) -> None:
    created = await create(http, variants=["a", "b", "c"], traffic_split={"a": 2, "b": 1, "c": 1})
    assert created["traffic_split"] == {"a": 0.5, "b": 0.25, "c": 0.25}


async def test_a_duplicate_name_in_the_project_is_409_naming_it(http: httpx.AsyncClient) -> None:
    await create(http)
    response = await http.post("/experiments", json=experiment_body(variants=["x", "y"]), headers=ADMIN_HEADERS)
    assert response.status_code == 409
    assert response.json()["field"] == "name"
    assert response.json()["conflicting_name"] == "signup-cta"
    assert "signup-cta" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (experiment_body(variants=["only"]), "variants"),
        (experiment_body(variants=["a", "a"]), "body"),
        (experiment_body(variants=["a", "b c"]), "variants.1"),
        (experiment_body(goal_event=""), "goal_event"),
        (experiment_body(traffic_split={"control": 1}), "body"),
        (experiment_body(traffic_split={"control": 1, "new_cta": 0}), "body"),
        (experiment_body(project="Not A Gateway"), "project"),
        ({"name": "x", "variants": ["a", "b"], "goal_event": GOAL}, "project"),
    ],
)
async def test_a_bad_create_is_400_naming_the_field(http: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    response = await http.post("/experiments", json=body, headers=ADMIN_HEADERS)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_create_in_an_unknown_project_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/experiments", json=experiment_body(project="nope"), headers=ADMIN_HEADERS)
    assert (response.status_code, response.json()["field"]) == (404, "project")


async def test_list_answers_the_projects_experiments_newest_first_and_filters_by_status(
    http: httpx.AsyncClient,
) -> None:
    key = await create_key(http, DEMO, "read")
    first = await create(http, name="one")
    second = await create(http, name="two")
    patched = await http.patch(f"/experiments/{first['id']}", json={"status": "paused"}, headers=ADMIN_HEADERS)
    assert patched.status_code == 200
    listed = (await http.get("/experiments", headers={"X-API-Key": key})).json()
    assert [e["id"] for e in listed["experiments"]] == [second["id"], first["id"]]
    assert listed["count"] == 2
    paused = (await http.get("/experiments?status=paused", headers={"X-API-Key": key})).json()
    assert [e["id"] for e in paused["experiments"]] == [first["id"]]
    bad = await http.get("/experiments?status=running", headers={"X-API-Key": key})
    assert (bad.status_code, bad.json()["field"]) == (400, "status")


# -- PATCH and DELETE -------------------------------------------------------------------------------------


async def test_patch_requires_a_status(http: httpx.AsyncClient) -> None:
    created = await create(http)
    response = await http.patch(f"/experiments/{created['id']}", json={"winner": "new_cta"}, headers=ADMIN_HEADERS)
    assert (response.status_code, response.json()["field"]) == (400, "status")


async def test_completed_without_a_winner_is_allowed_and_the_winner_stays_null(http: httpx.AsyncClient) -> None:
    created = await create(http)
    response = await http.patch(f"/experiments/{created['id']}", json={"status": "completed"}, headers=ADMIN_HEADERS)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["winner"]) == ("completed", None)
    assert response.json()["updated_at"] >= created["updated_at"]


async def test_completed_with_a_winner_records_it(http: httpx.AsyncClient) -> None:
    created = await create(http)
    body = {"status": "completed", "winner": "new_cta"}
    response = await http.patch(f"/experiments/{created['id']}", json=body, headers=ADMIN_HEADERS)
    assert (response.status_code, response.json()["winner"]) == (200, "new_cta")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "completed", "winner": "blue"}, "winner"),
        ({"status": "active", "winner": "new_cta"}, "body"),
        ({"status": "done"}, "status"),
    ],
)
async def test_a_bad_patch_is_400_naming_the_field(http: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    created = await create(http)
    response = await http.patch(f"/experiments/{created['id']}", json=body, headers=ADMIN_HEADERS)
    assert (response.status_code, response.json()["field"]) == (400, field)


async def test_delete_removes_the_experiment(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")
    created = await create(http)
    deleted = await http.delete(f"/experiments/{created['id']}", headers=ADMIN_HEADERS)
    assert deleted.json() == {"id": created["id"], "deleted": True}
    assert (await http.get(f"/experiments/{created['id']}", headers={"X-API-Key": key})).status_code == 404
    again = await http.delete(f"/experiments/{created['id']}", headers=ADMIN_HEADERS)
    assert again.status_code == 404


async def test_an_unknown_or_malformed_id_is_404_or_400(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")
    assert (await http.get("/experiments/exp_0000000000000000", headers={"X-API-Key": key})).status_code == 404
    malformed = await http.get("/experiments/nope", headers={"X-API-Key": key})
    assert (malformed.status_code, malformed.json()["field"]) == (400, "id")
    patch = await http.patch("/experiments/nope", json={"status": "paused"}, headers=ADMIN_HEADERS)
    assert (patch.status_code, patch.json()["field"]) == (400, "id")


async def test_a_read_key_may_read_but_not_write(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")
    created = await create(http)
    as_reader = {"Authorization": f"Bearer {key}"}
    assert (await http.post("/experiments", json=experiment_body(name="x"), headers=as_reader)).status_code == 403
    assert (
        await http.patch(f"/experiments/{created['id']}", json={"status": "paused"}, headers=as_reader)
    ).status_code == 403
    assert (await http.delete(f"/experiments/{created['id']}", headers=as_reader)).status_code == 403
    anonymous = await http.post("/experiments", json=experiment_body(name="y"))
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert (await http.get(f"/experiments/{created['id']}", headers=as_reader)).status_code == 200


# -- results and their statistics --------------------------------------------------------------------------


async def test_results_count_exposures_users_and_tagged_conversions_and_agree_with_the_formulas(
    http: httpx.AsyncClient,
) -> None:
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    created = await create(http)
    eid = created["id"]
    await send(http, token, exposures_and_goals(eid, "control", 120, 12))
    await send(http, token, exposures_and_goals(eid, "new_cta", 110, 22, tag="flat"))
    # Not counted: another experiment's exposure, a variant the experiment does not have, an untagged goal.
    await send(
        http,
        token,
        [
            {
                "event": "$experiment_exposure",
                "anonymous_id": "x1",
                "properties": {"experiment": "exp_1", "variant": "control"},
            },
            {"event": GOAL, "anonymous_id": "x2", "properties": {"$experiments": {eid: "purple"}}},
            {"event": GOAL, "anonymous_id": "x3"},
        ],
    )

    answer = await results(http, key, eid)
    rows = by_variant(answer)
    control, treatment = rows["control"], rows["new_cta"]
    assert (control["exposures"], control["unique_users"], control["conversions"], control["conversion_events"]) == (
        120,
        120,
        12,
        24,
    )
    assert (treatment["unique_users"], treatment["conversions"], treatment["conversion_events"]) == (110, 22, 44)
    assert (answer["results"]["total_users"], answer["results"]["total_conversions"]) == (230, 34)

    assert control["conversion_rate"] == pytest.approx(0.1)
    assert treatment["conversion_rate"] == pytest.approx(0.2)
    assert treatment["difference"] == pytest.approx(0.1)
    assert treatment["lift"] == pytest.approx(1.0)
    lo1, hi1 = wilson_by_hand(22, 110)
    lo0, hi0 = wilson_by_hand(12, 120)
    assert (treatment["conversion_rate_interval"]["lower"], treatment["conversion_rate_interval"]["upper"]) == (
        pytest.approx(lo1, abs=1e-9),
        pytest.approx(hi1, abs=1e-9),
    )
    newcombe = (0.1 - math.hypot(0.2 - lo1, hi0 - 0.1), 0.1 + math.hypot(hi1 - 0.2, 0.1 - lo0))
    interval = treatment["confidence_interval"]
    assert (interval["lower"], interval["upper"], interval["level"]) == (
        pytest.approx(newcombe[0], abs=1e-9),
        pytest.approx(newcombe[1], abs=1e-9),
        0.95,
    )
    assert treatment["p_value"] == pytest.approx(z_test_by_hand(22, 110, 12, 120), rel=1e-9)
    assert treatment["probability_to_beat_control"] == pytest.approx(beats_by_integration(22, 110, 12, 120), abs=1e-4)
    assert treatment["significant"] is True  # p ~ 0.036 with both variants past 100 users
    assert control["p_value"] is None and control["lift"] is None and control["probability_to_beat_control"] is None
    assert answer["results"]["sample_size_reached"] is True
    assert answer["results"]["sample_ratio"]["mismatch"] is False
    assert answer["flags"] == []


@pytest.mark.parametrize(
    ("c1", "n1", "c0", "n0"), [(0, 10, 0, 10), (5, 50, 9, 60), (300, 1000, 260, 1000), (1, 2, 0, 3)]
)
def test_probability_to_beat_control_matches_a_numerical_integral(c1: int, n1: int, c0: int, n0: int) -> None:
    assert probability_beats(c1, n1, c0, n0) == pytest.approx(beats_by_integration(c1, n1, c0, n0), abs=1e-4)


async def test_too_few_users_is_never_significant_however_large_the_difference(http: httpx.AsyncClient) -> None:
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    eid = (await create(http))["id"]
    await send(http, token, exposures_and_goals(eid, "control", 30, 0) + exposures_and_goals(eid, "new_cta", 30, 15))
    treatment = by_variant(await results(http, key, eid))["new_cta"]
    assert treatment["p_value"] < 0.001
    assert treatment["significant"] is False  # the fixed horizon: fewer than 100 users per variant


async def test_a_split_that_does_not_match_the_configured_one_is_flagged_as_sample_ratio_mismatch(
    http: httpx.AsyncClient,
) -> None:
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    eid = (await create(http))["id"]
    await send(http, token, exposures_and_goals(eid, "control", 180, 18) + exposures_and_goals(eid, "new_cta", 120, 12))
    answer = await results(http, key, eid)
    ratio = answer["results"]["sample_ratio"]
    chi_square = (180 - 150) ** 2 / 150 + (120 - 150) ** 2 / 150  # = 12, one degree of freedom: p ~ 0.0005
    assert ratio["p_value"] == pytest.approx(math.erfc(math.sqrt(chi_square / 2)), rel=1e-9)
    assert ratio["mismatch"] is True
    assert ratio["observed"] == {"control": 0.6, "new_cta": 0.4}
    assert [flag["type"] for flag in answer["flags"]] == ["sample_ratio_mismatch"]


async def test_the_same_counts_under_a_60_40_split_are_no_mismatch(http: httpx.AsyncClient) -> None:
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    eid = (await create(http, traffic_split={"control": 60, "new_cta": 40}))["id"]
    await send(http, token, exposures_and_goals(eid, "control", 180, 18) + exposures_and_goals(eid, "new_cta", 120, 12))
    answer = await results(http, key, eid)
    assert answer["results"]["sample_ratio"]["p_value"] == pytest.approx(1.0)
    assert answer["flags"] == []


async def test_events_from_before_the_experiment_was_created_are_never_counted(http: httpx.AsyncClient) -> None:
    """Exposure counts from creation on (as PostHog, GrowthBook and Optimizely count it): events tagged with the
    experiment's name before it existed, or stamped with an earlier time, belong to no run of it."""
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    early = [
        {
            "event": "$experiment_exposure",
            "anonymous_id": f"early-{n}",
            "properties": {"experiment": "signup-cta", "variant": "control"},
        }
        for n in range(5)
    ]
    await send(http, token, early)
    eid = (await create(http))["id"]
    backdated = [{**event, "timestamp": "2020-01-01T00:00:00Z"} for event in exposures_and_goals(eid, "new_cta", 4, 4)]
    await send(http, token, backdated)
    assert {v: (r["exposures"], r["unique_users"]) for v, r in by_variant(await results(http, key, eid)).items()} == {
        "control": (0, 0),
        "new_cta": (0, 0),
    }
    await send(http, token, early + exposures_and_goals(eid, "new_cta", 3, 1))
    counted = by_variant(await results(http, key, eid))
    assert (counted["control"]["unique_users"], counted["new_cta"]["unique_users"]) == (5, 3)
    assert counted["new_cta"]["conversions"] == 1


async def test_no_conversion_in_any_variant_after_48_hours_is_flagged(http: httpx.AsyncClient, app: Starlette) -> None:
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    eid = (await create(http))["id"]
    store: Store = app.state.services.store
    await send(http, token, exposures_and_goals(eid, "control", 5, 0) + exposures_and_goals(eid, "new_cta", 5, 0))
    assert (await results(http, key, eid))["flags"] == []  # young: not yet
    found = (await http.get("/analytics/anomalies", headers={"X-API-Key": key})).json()["anomalies"]
    assert not [a for a in found if a["type"].startswith("experiment")]
    await store.execute_now(
        "UPDATE experiments SET created_at_ms = created_at_ms - ? WHERE id = ?", (49 * 3600 * 1000, eid)
    )
    answer = await results(http, key, eid)
    assert [flag["type"] for flag in answer["flags"]] == ["no_goal_conversions"]
    assert GOAL in answer["flags"][0]["message"]
    found = (await http.get("/analytics/anomalies", headers={"X-API-Key": key})).json()["anomalies"]
    assert [(a["type"], a["subject"]) for a in found if a["type"].startswith("experiment")] == [
        ("experiment_no_conversions", eid)
    ]


# -- tracker config and assignment ---------------------------------------------------------------------------


def test_assignment_is_sticky_and_honours_the_split() -> None:
    variants, weights = ["a", "b", "c"], [0.5, 0.3, 0.2]
    picks = [assign("exp_0123456789abcdef", f"visitor-{n}", variants, weights) for n in range(20_000)]
    shares = [picks.count(v) / len(picks) for v in variants]
    assert shares == pytest.approx(weights, abs=0.015)
    assert picks == [assign("exp_0123456789abcdef", f"visitor-{n}", variants, weights) for n in range(20_000)]
    other = [assign("exp_fedcba9876543210", f"visitor-{n}", variants, weights) for n in range(1000)]
    assert other != picks[:1000]  # another experiment splits the same visitors independently


async def test_config_answers_the_active_experiments_for_the_project_token(http: httpx.AsyncClient) -> None:
    token = await create_key(http, DEMO, "pk")
    active = await create(http, name="active", traffic_split={"control": 9, "new_cta": 1})
    paused = await create(http, name="paused")
    await http.patch(f"/experiments/{paused['id']}", json={"status": "paused"}, headers=ADMIN_HEADERS)
    response = await http.get("/experiments/config", params={"token": token, "visitor_id": "v-42"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    [experiment] = response.json()["experiments"]
    assert response.json()["project"] == DEMO
    assert experiment == {
        "id": active["id"],
        "name": "active",
        "variants": ["control", "new_cta"],
        "weights": [9.0, 1.0],
        "goal_event": GOAL,
        "variant": assign(active["id"], "v-42", ["control", "new_cta"], [9.0, 1.0]),
    }


async def test_config_without_a_valid_project_token_is_refused(http: httpx.AsyncClient) -> None:
    read = await create_key(http, DEMO, "read")
    assert (await http.get("/experiments/config")).status_code == 400
    assert (await http.get("/experiments/config", params={"token": "pk_nope"})).status_code == 401
    assert (await http.get("/experiments/config", params={"token": read})).status_code == 401  # not a project token


async def test_config_refuses_a_browser_origin_the_project_does_not_allow_as_track_does(
    http: httpx.AsyncClient,
) -> None:
    token = await create_key(http, DEMO, "pk")
    await create(http)
    params = {"token": token, "visitor_id": "v-1"}
    refused = await http.get("/experiments/config", params=params, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert refused.json() == {"error": "Origin Not Allowed"}
    assert refused.headers["access-control-allow-origin"] == "*"  # so the page's script can read why
    track = await http.post("/track", json={"token": token, "event": "x"}, headers={"Origin": "https://evil.example"})
    assert (track.status_code, track.json()) == (403, refused.json())
    allowed = await http.get("/experiments/config", params=params, headers={"Origin": "http://localhost:5173"})
    assert allowed.status_code == 200 and len(allowed.json()["experiments"]) == 1
    assert (await http.get("/experiments/config", params=params)).status_code == 200  # a server sends no Origin
    await admin_json(http, "PUT", f"/v1/gateways/{DEMO}/origins", {"allowed_origins": ["https://shop.example"]})
    assert (await http.get("/experiments/config", params=params, headers={"Origin": "https://shop.example"})).is_success


# -- isolation ---------------------------------------------------------------------------------------------


async def test_another_gateways_keys_never_see_or_change_this_gateways_experiments(http: httpx.AsyncClient) -> None:
    await admin_json(http, "POST", "/v1/gateways", {"id": OTHER, "name": "Other"})
    other_read, other_pk = await create_key(http, OTHER, "read"), await create_key(http, OTHER, "pk")
    mine = await create(http)
    theirs = await create(http, project=OTHER)  # the same name in another project is no conflict
    reader = {"X-API-Key": other_read}

    assert (await http.get(f"/experiments/{mine['id']}", headers=reader)).status_code == 404
    listed = (await http.get("/experiments", headers=reader)).json()
    assert [e["id"] for e in listed["experiments"]] == [theirs["id"]]
    assert (await http.get(f"/experiments?project={DEMO}", headers=reader)).status_code == 403
    config = (await http.get("/experiments/config", params={"token": other_pk})).json()
    assert [e["id"] for e in config["experiments"]] == [theirs["id"]]
    patch = await http.patch(f"/experiments/{mine['id']}", json={"status": "paused"}, headers=reader)
    assert patch.status_code == 403
    assert (await http.delete(f"/experiments/{mine['id']}", headers=reader)).status_code == 403
    wrong_project = await http.patch(
        f"/experiments/{mine['id']}?project={OTHER}", json={"status": "paused"}, headers=ADMIN_HEADERS
    )
    assert wrong_project.status_code == 404
    demo_read = await create_key(http, DEMO, "read")
    assert (await results(http, demo_read, mine["id"]))["status"] == "active"


# -- the MCP tools and a real socket ----------------------------------------------------------------------------


async def test_results_over_a_real_socket_and_as_an_mcp_tool(
    live_server: LiveServer, live_http: httpx.AsyncClient
) -> None:
    key, token = await create_key(live_http, DEMO, "read"), await create_key(live_http, DEMO, "pk")
    created = (await live_http.post("/experiments", json=experiment_body(), headers=ADMIN_HEADERS)).json()
    await send(live_http, token, exposures_and_goals(created["id"], "control", 4, 1))
    rest = await results(live_http, key, created["id"])
    assert by_variant(rest)["control"]["conversions"] == 1

    call = jsonrpc_request("tools/call", {"name": "experiments_id", "arguments": {"id": created["id"]}})
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    response = await live_http.post("/analytics/mcp", json=call, headers=headers)
    assert response.status_code == 200, response.text
    tool = response.json()["result"]
    assert tool["isError"] is False
    assert tool["structuredContent"]["results"] == rest["results"]

    missing = jsonrpc_request("tools/call", {"name": "experiments_id", "arguments": {"id": "exp_0000000000000000"}})
    answer = (await live_http.post("/analytics/mcp", json=missing, headers=headers)).json()["result"]
    assert answer["isError"] is True and answer["structuredContent"]["field"] == "id"


# -- the dashboard ----------------------------------------------------------------------------------------------


async def test_the_dashboard_card_shows_each_active_experiments_variants(http: httpx.AsyncClient) -> None:
    key, token = await create_key(http, DEMO, "read"), await create_key(http, DEMO, "pk")
    eid = (await create(http))["id"]
    paused = await create(http, name="paused-one")
    await http.patch(f"/experiments/{paused['id']}", json={"status": "paused"}, headers=ADMIN_HEADERS)
    await send(http, token, exposures_and_goals(eid, "control", 8, 2) + exposures_and_goals(eid, "new_cta", 10, 5))
    page = await http.get("/dashboard", params={"full": "1"}, headers={"Cookie": f"{READ_KEY_COOKIE}={key}"})
    assert page.status_code == 200
    card = re.search(r'<section[^>]*id="experiments".*?</section>', page.text, re.S)
    assert card is not None
    rows = [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
        for row in re.findall(r"<tr>(.*?)</tr>", card.group(0), re.S)
    ]
    beats = f"{beats_by_integration(5, 10, 2, 8) * 100:.1f}%"
    assert rows[1:] == ["control control 8 2 25.0% — — —", f"new_cta 10 5 50.0% +100.0% {beats} —"]
    assert "signup-cta" in card.group(0) and "paused-one" not in card.group(0)


async def test_an_account_key_manages_its_own_projects_experiments_only(http: httpx.AsyncClient) -> None:
    account = await http.post("/v1/accounts", json={"id": "acme", "name": "Acme"}, headers=ADMIN_HEADERS)
    assert account.status_code == 201, account.text
    mine = {"X-API-Key": account.json()["api_key"]}
    project = (await http.post("/projects", json={"name": "Shop"}, headers=mine)).json()["id"]
    demo_experiment = await create(http)

    body = {k: v for k, v in experiment_body().items() if k != "project"}  # its only project: no need to name it
    created = await http.post("/experiments", json=body, headers=mine)
    assert (created.status_code, created.json()["project"]) == (201, project)
    listed = (await http.get("/experiments", headers=mine)).json()
    assert [e["id"] for e in listed["experiments"]] == [created.json()["id"]]
    patched = await http.patch(f"/experiments/{created.json()['id']}", json={"status": "paused"}, headers=mine)
    assert (patched.status_code, patched.json()["status"]) == (200, "paused")

    assert (await http.get(f"/experiments/{demo_experiment['id']}", headers=mine)).status_code == 404
    foreign = await http.patch(f"/experiments/{demo_experiment['id']}", json={"status": "paused"}, headers=mine)
    assert (foreign.status_code, foreign.json()["field"]) == (404, "id")  # as if it did not exist
    assert (await http.delete(f"/experiments/{demo_experiment['id']}", headers=mine)).status_code == 404
    in_demo = await http.post("/experiments", json=experiment_body(name="sneaky"), headers=mine)
    assert in_demo.status_code == 404


async def test_deleting_a_project_removes_its_experiments_and_their_counts(
    http: httpx.AsyncClient, app: Starlette
) -> None:
    account = await http.post("/v1/accounts", json={"id": "acme", "name": "Acme"}, headers=ADMIN_HEADERS)
    mine = {"X-API-Key": account.json()["api_key"]}
    made = (await http.post("/projects", json={"name": "Shop"}, headers=mine)).json()
    created = (await http.post("/experiments", json=experiment_body(project=made["id"]), headers=mine)).json()
    await send(http, made["project_token"], exposures_and_goals(created["id"], "control", 3, 1))
    deleted = await http.delete(f"/projects/{made['id']}", headers=mine)
    assert deleted.status_code == 202, deleted.text
    removing = deleted.json()["removing"]
    assert (removing["experiments"], removing["experiment_users"], removing["experiment_variants"]) == (1, 3, 1)
    with anyio.fail_after(30):
        await app.state.purger.wait_idle()
    store: Store = app.state.services.store
    for table in ("experiments", "experiment_users", "experiment_variants"):
        assert (await store.fetch(f"SELECT COUNT(*) FROM {table} WHERE gateway_id = ?", (made["id"],)))[0][0] == 0


async def test_changes_count_against_the_keys_per_minute_limit(db_path: Path, database_url: str | None) -> None:
    settings = Settings(db_path=db_path, database_url=database_url, admin_token=ADMIN_TOKEN, api_rate_limit=2)
    app = create_app(settings)
    async with (
        lifespan_running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        statuses = [
            (await http.post("/experiments", json=experiment_body(name=f"e{n}"), headers=ADMIN_HEADERS)).status_code
            for n in range(3)
        ]
    assert statuses == [201, 201, 429]
