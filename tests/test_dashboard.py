"""The dashboard in-process: read-key login and logout, the page's figures against the API's, isolation and escaping.

The page comes with its slow cards as placeholders, each filled from /dashboard/sections/{id}: `dashboard_page`
does what the page's sections.js does (fetch each placeholder's card and put it in its place), so every figure
is checked as a browser ends up showing it; `?full=1` (every card rendered at once) must give the same page.
"""

from __future__ import annotations

import html
import re
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.accounts.access import READ_KEY_COOKIE
from mcp_gateway.analytics import QUESTIONS, Asked, Question, WindowArgs
from mcp_gateway.dashboard import Dashboard, charts, markup
from mcp_gateway.experiments import QUESTIONS as EXPERIMENT_QUESTIONS
from mcp_gateway.store import LeadRecord

from .analytics_support import DAY, HOUR, MINUTE, T0, mcp_call, mcp_session, seed, store_of, web_event
from .support import DEMO, BoundedASGITransport, admin_json, create_key

WINDOW = {"since": T0, "until": T0 + DAY}
"""The day everything is seeded in: the dashboard charts it per hour."""


# -- reading the page ---------------------------------------------------------------------------------


def section_of(page: str, section_id: str) -> str:
    found = re.search(rf'<section[^>]*id="{section_id}".*?</section>', page, re.S)
    assert found is not None, f"no section {section_id!r} in the page"
    return found.group(0)


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def cell_texts(page: str, section_id: str) -> list[list[str]]:
    """The text of each table row's cells in the section `section_id` (header rows left out)."""
    rows = re.findall(r"<tr>(.*?)</tr>", section_of(page, section_id), re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [[text_of(cell) for cell in row] for row in cells if row]


def stat_values(page: str) -> dict[str, str]:
    """The overview tiles: data-stat -> the value shown."""
    tiles = re.findall(r'data-stat="([^"]+)".*?<div class="value">(.*?)</div>', section_of(page, "overview"), re.S)
    return {key: text_of(value) for key, value in tiles}


def chart_titles(page: str) -> list[str]:
    """The tooltips of the sessions chart's marks."""
    return [text_of(t) for t in re.findall(r"<title>(.*?)</title>", section_of(page, "sessions-chart"), re.S)]


# -- logging in ---------------------------------------------------------------------------------------


def cookie(key: str) -> dict[str, str]:
    return {"Cookie": f"{READ_KEY_COOKIE}={key}"}


async def test_without_a_key_cookie_the_dashboard_is_the_login_form(http: httpx.AsyncClient) -> None:
    response = await http.get("/dashboard")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form class="card" method="post" action="/dashboard/login">' in response.text
    assert 'name="key"' in response.text
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("kind", [None, "org", "sk"])
async def test_a_wrong_or_non_read_key_gets_the_form_again_with_401(http: httpx.AsyncClient, kind: str | None) -> None:
    key = "rk_not-a-key" if kind is None else await create_key(http, DEMO, kind)

    response = await http.post("/dashboard/login", data={"key": key})

    assert response.status_code == 401
    assert 'role="alert"' in response.text and 'action="/dashboard/login"' in response.text
    assert "set-cookie" not in response.headers


async def test_a_read_key_sets_a_strict_httponly_cookie_and_redirects_to_the_dashboard(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")

    response = await http.post("/dashboard/login", data={"key": f"  {key} "}, headers={"Origin": "http://127.0.0.1"})

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{READ_KEY_COOKIE}={key};")
    assert {"httponly", "path=/", "samesite=strict"} <= {part.strip().lower() for part in set_cookie.split(";")}
    assert "secure" not in set_cookie.lower()  # plain http here; https below
    page = await http.get("/dashboard", headers=cookie(key))
    assert page.status_code == 200
    assert "<h1>Demo" in page.text and 'action="/dashboard/logout"' in page.text


async def test_over_https_the_cookie_is_secure(app: Starlette) -> None:
    transport = BoundedASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://dash.example") as https:
        key = await create_key(https, DEMO, "read")
        response = await https.post("/dashboard/login", data={"key": key})

    assert response.status_code == 303
    assert "secure" in [part.strip().lower() for part in response.headers["set-cookie"].split(";")]


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/page"}],
)
async def test_a_cross_site_login_or_logout_is_refused(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    key = await create_key(http, DEMO, "read")

    login = await http.post("/dashboard/login", data={"key": key}, headers=headers)
    logout = await http.post("/dashboard/logout", headers={**headers, **cookie(key)})

    assert (login.status_code, logout.status_code) == (403, 403)
    assert "set-cookie" not in login.headers and "set-cookie" not in logout.headers


async def test_behind_a_proxy_the_forwarded_host_counts_as_the_origin(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")
    headers = {"Origin": "https://dash.example", "X-Forwarded-Host": "dash.example"}

    response = await http.post("/dashboard/login", data={"key": key}, headers=headers)

    assert response.status_code == 303


async def test_logout_clears_the_cookie(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")

    response = await http.post("/dashboard/logout", headers={**cookie(key), "Referer": "http://127.0.0.1/dashboard"})

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cleared = response.headers["set-cookie"].lower()
    assert cleared.startswith(f'{READ_KEY_COOKIE}="";') and "max-age=0" in cleared


async def test_a_revoked_keys_cookie_gets_the_login_form_and_is_cleared(http: httpx.AsyncClient) -> None:
    created = await admin_json(http, "POST", f"/v1/gateways/{DEMO}/keys", {"kind": "read"})
    await admin_json(http, "DELETE", f"/v1/gateways/{DEMO}/keys/{created['id']}")

    response = await http.get("/dashboard", headers=cookie(created["key"]))

    assert response.status_code == 200
    assert 'action="/dashboard/login"' in response.text
    assert "max-age=0" in response.headers["set-cookie"].lower()


# -- the figures --------------------------------------------------------------------------------------


async def seed_gateway(app: Starlette, gateway_id: str = DEMO) -> None:
    """Two agent sessions and two web visits on 2026-01-01, and one lead.

    MCP: s1 (Claude Desktop) 01:00 search 10 ms, search 30 ms failed, book_demo 50 ms; s2 (MCP Inspector) 02:00
    search 20 ms. Web: visitor a (google / organic) 03:00 $session_start, page_view /, page_view /pricing;
    visitor b 04:00 page_view / (its session derived by the writer).
    """
    s1, s2 = f"{gateway_id}-s1", f"{gateway_id}-s2"
    await seed(
        app,
        sessions=[
            mcp_session(s1, T0 + HOUR, gateway_id=gateway_id),
            mcp_session(s2, T0 + 2 * HOUR, client="mcp-inspector 0.14", gateway_id=gateway_id),
        ],
        events=[
            mcp_call(s1, "search", T0 + HOUR + MINUTE, 10.0, gateway_id=gateway_id),
            mcp_call(
                s1, "search", T0 + HOUR + 2 * MINUTE, 30.0, success=False, error_type="Timeout", gateway_id=gateway_id
            ),
            mcp_call(s1, "book_demo", T0 + HOUR + 3 * MINUTE, 50.0, gateway_id=gateway_id),
            mcp_call(s2, "search", T0 + 2 * HOUR + MINUTE, 20.0, gateway_id=gateway_id),
            *[
                web_event(
                    name,
                    T0 + 3 * HOUR + offset,
                    visitor=f"{gateway_id}-a",
                    session=f"{gateway_id}-wa",
                    path=path,
                    referrer="https://www.google.com/",
                    traffic_source="google",
                    traffic_medium="organic",
                    gateway_id=gateway_id,
                )
                for name, path, offset in [
                    ("$session_start", "/", 0),
                    ("page_view", "/", 1),
                    ("page_view", "/pricing", MINUTE),
                ]
            ],
            web_event("page_view", T0 + 4 * HOUR, visitor=f"{gateway_id}-b", path="/", gateway_id=gateway_id),
        ],
    )
    lead = LeadRecord(
        id=f"{gateway_id}-lead-1",
        gateway_id=gateway_id,
        name="Ada Lovelace",
        email="ada@example.com",
        company="Analytical Engines & Co",
        message=None,
        source="mcp",
        created_at_ms=T0 + HOUR + 3 * MINUTE,
    )
    await store_of(app).book_lead(lead, dedupe_window_ms=0)


PLACEHOLDER: Final = re.compile(
    r'<section class="card [\w-]+ pending" id="([\w-]+)" aria-busy="true" data-source="([^"]*)">.*?</section>', re.S
)
NOSCRIPT: Final = re.compile(r"<noscript>.*?</noscript>", re.S)


async def fill_placeholders(http: httpx.AsyncClient, key: str, shell: str) -> str:
    """`shell` with each placeholder replaced by the card its data-source answers, as sections.js does."""
    filled = shell
    for section_id, source in PLACEHOLDER.findall(shell):
        response = await http.get(html.unescape(source), headers=cookie(key))
        assert response.status_code == 200, (source, response.text)
        assert response.headers["content-type"].startswith("text/html")
        card = response.text
        assert card.startswith('<section class="card ') and f'id="{section_id}"' in card.split(">", 1)[0], card
        filled = filled.replace(section_of(filled, section_id), card, 1)
    return filled


async def dashboard_page(http: httpx.AsyncClient, key: str, **params: Any) -> str:
    """The dashboard as a browser with JavaScript ends up showing it: the page, its placeholders filled."""
    response = await http.get("/dashboard", params={**WINDOW, **params}, headers=cookie(key))
    assert response.status_code == 200, response.text
    return await fill_placeholders(http, key, response.text)


def without_full(page: str) -> str:
    """A `?full=1` page as the page without `full`: its links and the funnel's form keep `full=1`."""
    return page.replace("&amp;full=1", "").replace('<input type="hidden" name="full" value="1">', "")


async def full_page(http: httpx.AsyncClient, key: str, **params: Any) -> str:
    """The dashboard rendered whole on the server (`?full=1`, the <noscript> link)."""
    response = await http.get("/dashboard", params={**WINDOW, **params, "full": "1"}, headers=cookie(key))
    assert response.status_code == 200, response.text
    assert "aria-busy" not in response.text and "data-source" not in response.text
    return response.text


async def api(http: httpx.AsyncClient, key: str, path: str, **params: Any) -> Any:
    response = await http.get(path, params={**WINDOW, **params}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_overview_tools_and_clients_show_the_apis_figures(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_gateway(app)
    key = await create_key(http, DEMO, "read")

    page = await dashboard_page(http, key)

    overview = await api(http, key, "/analytics/overview")
    # 2 web sessions of 2 visitors, 3 page views, 8 events (4 MCP + 4 web), 2 MCP sessions,
    # 4 tool calls of which 1 failed (25.0%), 1 lead.
    expected = {"sessions": "2", "visitors": "2", "page-views": "3", "mcp-sessions": "2", "tool-calls": "4"}
    expected |= {"error-rate": "25.0%", "leads": "1", "events": "8"}
    assert stat_values(page) == expected
    assert (overview["sessions"], overview["tool_calls"], overview["leads"], overview["events"]) == (2, 4, 1, 8)

    tools = {row[0]: row[1:] for row in cell_texts(page, "tools")}
    by_name = {p["name"]: p for p in (await api(http, key, "/analytics/tools"))["primitives"]}
    assert set(tools) == {"tool search", "tool book_demo"}
    # search: 3 calls, 1 error = 33.3%, average (10 + 30 + 20) / 3 = 20.0 ms; book_demo: 1 call of 50 ms.
    assert tools["tool search"][:4] == ["3", "1", "33.3%", "20.0 ms"]
    assert tools["tool book_demo"][:4] == ["1", "0", "0.0%", "50.0 ms"]
    for name, row in tools.items():
        stats = by_name[name.removeprefix("tool ")]
        shown = [f"{stats[f]:.1f} ms" for f in ("p50_ms", "p95_ms", "p99_ms")]
        assert row[4:] == shown  # percentiles as the API gives them (within the histogram's error of the truth)

    clients = {row[0]: row[1:] for row in cell_texts(page, "clients")}
    # Claude Desktop: 1 session, 3 calls, 1 error, (10 + 30 + 50) / 3 = 30.0 ms; MCP Inspector: 1, 1, 0, 20.0 ms.
    assert clients == {
        "Claude Desktop 1.0": ["1", "3", "33.3%", "30.0 ms"],
        "MCP Inspector 0.14": ["1", "1", "0.0%", "20.0 ms"],
    }


async def test_the_web_sections_show_the_apis_pages_sources_and_sessions(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    await seed_gateway(app)
    key = await create_key(http, DEMO, "read")

    page = await dashboard_page(http, key)

    # "/" viewed by a and b (2 views, 2 visitors), "/pricing" once by a.
    assert cell_texts(page, "pages") == [["/", "2", "2"], ["/pricing", "1", "1"]]
    top = (await api(http, key, "/analytics/pages/top"))["pages"]
    assert [[p["path"], str(p["views"]), str(p["unique_visitors"])] for p in top] == cell_texts(page, "pages")

    # a's session came from google (referred by www.google.com), b's from nowhere: one session each.
    sources = cell_texts(page, "sources")
    assert sources == [["(unknown) / (none)", "—", "1", "50.0%"], ["google / organic", "google.com", "1", "50.0%"]]
    ranked = (await api(http, key, "/analytics/sources"))["sources"]
    assert [row[0] for row in sources] == [f"{s['source']} / {s['medium']}" for s in ranked]

    # Per hour: web sessions at 03:00 and 04:00, MCP sessions at 01:00 and 02:00 (the API's series).
    web = (await api(http, key, "/stats", source="web", group_by="hour"))["timeseries"]
    assert [p["sessions"] for p in web][:6] == [0, 0, 0, 1, 1, 0]
    titles = chart_titles(page)
    assert "03:00 · web sessions: 1" in titles and "04:00 · web sessions: 1" in titles
    assert "01:00 · MCP sessions: 1" in titles and "02:00 · MCP sessions: 1" in titles
    assert "00:00 · web sessions: 0" in titles


async def test_recent_sessions_show_their_calls_and_leads_are_listed(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_gateway(app)
    key = await create_key(http, DEMO, "read")

    page = await dashboard_page(http, key)

    sessions = section_of(page, "mcp-sessions")
    listed = (await api(http, key, "/analytics/mcp/sessions"))["sessions"]
    summaries = [text_of(s) for s in re.findall(r"<summary>(.*?)</summary>", sessions, re.S)]
    # Newest first: s2 (1 call) then s1 (3 calls, 1 error, booked a demo).
    assert [s["session_id"] for s in listed] == ["demo-s2", "demo-s1"]
    assert summaries == [
        "MCP Inspector 0.14 1 call · Jan 01 02:00",
        "Claude Desktop 1.0 1 error booked demo 3 calls · Jan 01 01:00",
    ]
    s1_calls = [text_of(li) for li in re.findall(r"<li>(.*?)</li>", sessions.split("<details>")[2], re.S)]
    assert s1_calls == [
        "01:01:00 tool search 10.0 ms",
        "01:02:00 tool search Timeout 30.0 ms",
        "01:03:00 tool book_demo 50.0 ms",
    ]

    [lead] = (await api(http, key, "/analytics/leads"))["leads"]
    # The e-mail as the API shows it to a read key (masked, or not: the page shows what the key may see).
    assert cell_texts(page, "leads") == [
        [f"Ada Lovelace {lead['email']}", "Analytical Engines & Co", "mcp", "2026-01-01 01:03 UTC"]
    ]


def funnel_rows(page: str) -> list[tuple[str, str]]:
    """The funnel's bars: (label, note) each."""
    funnel = section_of(page, "funnel")
    labels = [text_of(t) for t in re.findall(r'<text class="label"[^>]*>(.*?)</text>', funnel)]
    notes = [text_of(t) for t in re.findall(r'<text class="note"[^>]*>(.*?)</text>', funnel)]
    return list(zip(labels, notes, strict=True))


async def test_the_funnel_defaults_to_the_top_events_and_takes_steps_from_the_query(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    await seed_gateway(app)
    key = await create_key(http, DEMO, "read")

    default = await dashboard_page(http, key)
    chosen = await dashboard_page(http, key, steps="$session_start, page_view,book_demo")

    # The web has one event besides session bookkeeping (page_view), so the default is MCP's top two:
    # search (sessions s1 and s2), then book_demo (s1 only): 2, then 1 = 50.0%.
    assert funnel_rows(default) == [("1. search", "2 · 100.0%"), ("2. book_demo", "1 · 50.0%")]
    assert 'value="search,book_demo"' in default
    assert "Overall conversion 50.0%" in text_of(section_of(default, "funnel"))
    # Visitor a started a session and viewed a page; no web visitor booked a demo.
    assert funnel_rows(chosen) == [
        ("1. $session_start", "1 · 100.0%"),
        ("2. page_view", "1 · 100.0%"),
        ("3. book_demo", "0 · 0.0%"),
    ]
    response = await http.post(
        "/funnel",
        json={**WINDOW, "steps": ["$session_start", "page_view", "book_demo"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert [step["users"] for step in response.json()["steps"]] == [1, 1, 0]


async def test_funnel_steps_the_funnel_refuses_say_why_in_its_card(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")

    page = await dashboard_page(http, key, steps=f"page_view,{'x' * 300}")

    funnel = text_of(section_of(page, "funnel"))
    assert "Not answered: steps.1" in funnel and "at most 200 characters" in funnel, funnel
    assert stat_values(page)["sessions"] == "0"  # the rest of the page is there


async def test_another_gateways_key_sees_none_of_this_gateways_data(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_gateway(app)
    await admin_json(http, "POST", "/v1/gateways", {"id": "other", "name": "Other"})
    key = await create_key(http, "other", "read")

    page = await dashboard_page(http, key)

    assert "<h1>Other</h1>" in page
    assert set(stat_values(page).values()) == {"0", "0.0%"}
    for absent in ("search", "book_demo", "/pricing", "Ada Lovelace", "Claude Desktop", "demo-s1", "google"):
        assert absent not in page
    assert "No tool, resource or prompt calls in this period." in page
    assert "No MCP sessions in this period." in page


async def test_hostile_names_and_paths_are_escaped(app: Starlette, http: httpx.AsyncClient) -> None:
    path = '/<script>alert("p")</script>'
    tool = "<img src=x onerror=alert(1)>"
    await seed(
        app,
        sessions=[mcp_session("s-evil", T0 + HOUR, client='<b>"evil"</b> 1.0')],
        events=[
            mcp_call("s-evil", tool, T0 + HOUR + MINUTE, 5.0),
            web_event("page_view", T0 + 2 * HOUR, visitor="v", path=path, traffic_source="<i>src</i>"),
        ],
    )
    key = await create_key(http, DEMO, "read")

    page = await dashboard_page(http, key, steps=f"{tool},<x>")

    assert "<script>alert" not in page and "<img src=x" not in page and "<b>" not in page and "<i>src" not in page
    assert "&lt;script&gt;alert(&quot;p&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert ['/<script>alert("p")</script>', "1", "1"] in cell_texts(page, "pages")
    assert re.findall(r"<script[^>]*></script>", page) == [  # the page's own scripts, nothing else
        f'<script src="{src}" defer></script>' for src in re.findall(r'src="(/dashboard/static/\w+\.js\?v=\w+)"', page)
    ]
    assert len(re.findall(r"<script", page)) == 2


# -- the page's placeholders and the cards that fill them --------------------------------------------------

DEFERRED: Final = ("sessions-chart", "clients", "pages", "sources", "funnel")
"""The cards whose questions take long on a big database: placeholders in the page."""
FILLED: Final = ("overview", "tools", "mcp-sessions", "leads", "live")


def section_url(section_id: str, **params: Any) -> str:
    return f"/dashboard/sections/{section_id}?{urlencode({**WINDOW, **params})}"


async def test_the_page_fills_the_fast_cards_and_leaves_a_placeholder_for_each_slow_one(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    await seed_gateway(app)
    key = await create_key(http, DEMO, "read")

    response = await http.get("/dashboard", params=WINDOW, headers=cookie(key))
    shell = response.text
    full = await full_page(http, key)

    assert response.status_code == 200 and response.headers["server-timing"].startswith("render;dur=")
    for section_id in FILLED:
        assert section_of(shell, section_id) == section_of(full, section_id), section_id
    assert stat_values(shell)["tool-calls"] == "4"
    placeholders = {section_id: html.unescape(source) for section_id, source in PLACEHOLDER.findall(shell)}
    assert list(placeholders) == list(DEFERRED)
    for section_id, source in placeholders.items():
        placeholder = section_of(shell, section_id)
        filled_class = re.search(r'<section class="([^"]+)"', section_of(full, section_id))
        assert filled_class is not None
        assert f'class="{filled_class.group(1)} pending"' in placeholder  # the same size as the card it becomes
        assert text_of(placeholder).endswith("Loading…") and 'role="status"' in placeholder
        assert source == f"/dashboard/sections/{section_id}?{urlencode(WINDOW)}"
    [noscript] = NOSCRIPT.findall(shell)
    assert f'href="?{html.escape(urlencode({**WINDOW, "full": "1"}))}"' in noscript
    assert "<noscript>" not in full
    # Filled in, the page is the whole page the server renders with ?full=1, with or without funnel steps.
    assert NOSCRIPT.sub("", await fill_placeholders(http, key, shell)) == without_full(full)
    steps = {"period": "30d", "steps": "page_view,book_demo"}
    chosen = await http.get("/dashboard", params=steps, headers=cookie(key))
    assert f"/dashboard/sections/funnel?{html.escape(urlencode(steps))}" in chosen.text
    funnel = await http.get(f"/dashboard/sections/funnel?{urlencode(steps)}", headers=cookie(key))
    assert 'name="period" value="30d"' in funnel.text and 'value="page_view,book_demo"' in funnel.text


async def test_a_card_shows_the_apis_figures(app: Starlette, http: httpx.AsyncClient) -> None:
    await seed_gateway(app)
    key = await create_key(http, DEMO, "read")

    cards = {
        section_id: await http.get(section_url(section_id), headers=cookie(key))
        for section_id in ("clients", "pages", "sources", "overview")
    }

    for response in cards.values():
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        assert "<html" not in response.text and "<script" not in response.text
    clients = (await api(http, key, "/analytics/clients"))["clients"]
    assert [row[1:3] for row in cell_texts(cards["clients"].text, "clients")] == [
        [str(c["sessions"]), str(c["calls"])] for c in clients
    ]
    pages = (await api(http, key, "/analytics/pages/top"))["pages"]
    assert cell_texts(cards["pages"].text, "pages") == [
        [p["path"], str(p["views"]), str(p["unique_visitors"])] for p in pages
    ]
    sources = (await api(http, key, "/analytics/sources"))["sources"]
    assert [row[2:] for row in cell_texts(cards["sources"].text, "sources")] == [
        [str(s["sessions"]), f"{s['share'] * 100:.1f}%"] for s in sources
    ]
    overview = await api(http, key, "/analytics/overview")
    assert stat_values(cards["overview"].text)["events"] == str(overview["events"]) == "8"


@pytest.mark.parametrize("key", [None, "rk_not-a-key"])
async def test_a_card_without_a_valid_login_cookie_is_401(http: httpx.AsyncClient, key: str | None) -> None:
    response = await http.get(section_url("funnel"), headers=cookie(key) if key else {})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}


async def test_an_unknown_card_is_404_and_bad_parameters_400(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")

    unknown = await http.get(section_url("secrets"), headers=cookie(key))
    bad_period = await http.get("/dashboard/sections/funnel?period=1y", headers=cookie(key))
    one_step = await http.get(section_url("funnel", steps="only_one"), headers=cookie(key))

    assert unknown.status_code == 404 and unknown.json() == {"error": "No such dashboard section", "field": "name"}
    assert (bad_period.status_code, bad_period.json()["field"]) == (400, "period")
    assert (one_step.status_code, one_step.json()["field"]) == (400, "steps")


async def test_hostile_names_and_paths_are_escaped_in_the_cards(app: Starlette, http: httpx.AsyncClient) -> None:
    path = '/<script>alert("p")</script>'
    tool = "<img src=x onerror=alert(1)>"
    await seed(
        app,
        sessions=[mcp_session("s-evil", T0 + HOUR, client='<b>"evil"</b> 1.0')],
        events=[
            mcp_call("s-evil", tool, T0 + HOUR + MINUTE, 5.0),
            web_event("page_view", T0 + 2 * HOUR, visitor="v", path=path, traffic_source="<i>src</i>"),
        ],
    )
    key = await create_key(http, DEMO, "read")

    cards = [
        (await http.get(section_url(section_id, steps=f"{tool},<x>"), headers=cookie(key))).text
        for section_id in DEFERRED
    ]

    for card in cards:
        assert "<script" not in card and "<img" not in card and "<b>" not in card and "<i>" not in card, card
    pages, sources, funnel = cards[2], cards[3], cards[4]
    assert "&lt;script&gt;alert(&quot;p&quot;)&lt;/script&gt;" in pages
    assert ['/<script>alert("p")</script>', "1", "1"] in cell_texts(pages, "pages")
    assert "&lt;i&gt;src&lt;/i&gt;" in sources
    assert 'value="&lt;img src=x onerror=alert(1)&gt;,&lt;x&gt;"' in funnel
    assert "&lt;b&gt;&quot;evil&quot;&lt;/b&gt;" in cards[1]


async def test_the_whole_pages_links_and_form_keep_it_whole(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")

    page = (await http.get("/dashboard", params={"period": "30d", "full": "1"}, headers=cookie(key))).text

    links = [html.unescape(q) for q in re.findall(r'<a href="\?([^"]*)"', page)]
    assert links == [f"period={p}&full=1" for p in ("24h", "7d", "30d", "90d")]
    assert '<input type="hidden" name="full" value="1">' in section_of(page, "funnel")
    assert "<noscript>" not in page and "aria-busy" not in page


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "1y"}, "period"),
        ({"since": "yesterday"}, "since"),
        ({"since": T0 + DAY, "until": T0}, "since"),
        ({"steps": "only_one"}, "steps"),
        ({"steps": ",".join(f"e{i}" for i in range(11))}, "steps"),
    ],
)
async def test_bad_parameters_get_400_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    key = await create_key(http, DEMO, "read")

    response = await http.get("/dashboard", params=params, headers=cookie(key))

    assert response.status_code == 400
    assert f"(parameter <code>{field}</code>)" in response.text


async def test_the_period_links_keep_the_funnel_steps(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")

    page = (await http.get("/dashboard", params={"period": "30d", "steps": "a,b"}, headers=cookie(key))).text

    links = re.findall(r'<a href="\?([^"]*)"( aria-current="page")?>(\w+)</a>', page)
    assert [(html.unescape(q), current != "", label) for q, current, label in links] == [
        ("period=24h&steps=a%2Cb", False, "24h"),
        ("period=7d&steps=a%2Cb", False, "7d"),
        ("period=30d&steps=a%2Cb", True, "30d"),
        ("period=90d&steps=a%2Cb", False, "90d"),
    ]


# -- sections without their question ------------------------------------------------------------------


async def test_a_missing_or_failing_question_leaves_its_section_unavailable(app: Starlette) -> None:
    async def broken(asked: Asked, args: WindowArgs) -> Any:
        raise RuntimeError("the database is on fire")

    services = app.state.services
    tools = Question("/analytics/tools", "Broken on purpose", WindowArgs, broken)
    dashboard = Dashboard(services.keys, services.store, services.directory, [tools])
    only_dashboard = Starlette(routes=dashboard.routes())
    transport = BoundedASGITransport(app=only_dashboard, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        _, key = await services.keys.create(DEMO, "read")
        page = await dashboard_page(client, key)
        full = await full_page(client, key)

    assert "This section could not be loaded." in text_of(section_of(page, "tools"))
    for section_id in ("overview", "clients", "leads", "pages", "sources", "mcp-sessions", "sessions-chart"):
        assert "not available" in text_of(section_of(page, section_id)), section_id
    assert "the database is on fire" not in page
    assert NOSCRIPT.sub("", page) == without_full(full)


def test_every_section_asks_a_registered_question() -> None:
    served = {(q.method, q.path) for q in [*QUESTIONS, *EXPERIMENT_QUESTIONS]}
    asked = {
        ("GET", "/analytics/overview"),
        ("GET", "/stats"),
        ("GET", "/analytics/tools"),
        ("GET", "/analytics/clients"),
        ("GET", "/analytics/mcp/sessions"),
        ("GET", "/analytics/mcp/sessions/{session_id}"),
        ("GET", "/analytics/leads"),
        ("GET", "/analytics/pages/top"),
        ("GET", "/analytics/sources"),
        ("GET", "/events"),
        ("POST", "/funnel"),
        ("GET", "/experiments"),
        ("GET", "/experiments/{id}"),
    }
    assert asked <= served, asked - served


# -- charts and formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("highest", "scale"), [(0, (1.0, 1.0)), (2, (1.0, 2.0)), (7, (2.0, 8.0)), (54, (20.0, 60.0)), (0.3, (0.1, 0.3))]
)
def test_a_chart_axis_rises_in_round_steps_to_just_above_the_highest_value(
    highest: float, scale: tuple[float, float]
) -> None:
    step, top = charts.nice_scale(highest)
    assert (step, top) == pytest.approx(scale)


def test_a_column_chart_draws_one_column_and_one_point_per_label_and_labels_at_most_eight() -> None:
    labels = [f"d{i}" for i in range(20)]
    svg = charts.column_chart(
        labels, charts.Series("sessions", [float(i) for i in range(20)]), charts.Series("agents", [1.0] * 20), title="t"
    )
    assert svg.count('<rect class="bar"') == 20 and svg.count('<circle class="dot"') == 20
    assert len(re.findall(r'<text class="tick" x="[\d.]+" y="232" text-anchor="middle">', svg)) == 7  # every 3rd
    assert "<title>d19 · sessions: 19</title>" in svg


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.4213, "0.42 ms"), (12.34, "12.3 ms"), (1234.6, "1,235 ms"), (25_000, "25.0 s"), (None, "—"), (True, "—")],
)
def test_latencies_are_shown_with_sensible_precision(value: object, shown: str) -> None:
    assert markup.millis(value) == shown


def test_render_escapes_every_value_but_markup() -> None:
    inner = markup.render("<b>{x}</b>", x="<i>&")
    assert markup.render("<p title={t}>{inner}</p>", t='"q"', inner=inner) == (
        "<p title=&quot;q&quot;><b>&lt;i&gt;&amp;</b></p>"
    )


# -- static files -------------------------------------------------------------------------------------


async def test_the_stylesheet_and_script_are_cached_by_etag_and_linked_by_content_hash(http: httpx.AsyncClient) -> None:
    page = (await http.get("/dashboard")).text
    [css_link] = re.findall(r'href="(/dashboard/static/dashboard\.css\?v=\w+)"', page)

    css = await http.get(css_link)
    again = await http.get(css_link, headers={"If-None-Match": css.headers["etag"]})
    missing = await http.get("/dashboard/static/nothing.js")

    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"]
    assert css_link.endswith(css.headers["etag"].strip('"'))
    assert again.status_code == 304 and again.content == b""
    assert missing.status_code == 404


async def test_the_pages_scripts_are_the_live_feed_and_the_cards_filler(http: httpx.AsyncClient) -> None:
    key = await create_key(http, DEMO, "read")
    page = (await http.get("/dashboard", headers=cookie(key))).text

    links = re.findall(r'<script src="(/dashboard/static/(\w+)\.js\?v=(\w+))" defer></script>', page)
    scripts = [await http.get(link) for link, _, _ in links]

    assert [name for _, name, _ in links] == ["live", "sections"]
    for (_, _, version), script in zip(links, scripts, strict=True):
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert script.headers["etag"] == f'"{version}"'
    assert 'credentials: "same-origin"' in scripts[1].text and "could not be loaded" in scripts[1].text
