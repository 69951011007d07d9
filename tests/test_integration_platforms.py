"""The platform adapters: each payload field by field, each platform's answers judged, the webhook signature,
and requests sent with httpx over real sockets to the fakes in `tests/fake_platforms.py`."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

import httpx
import pytest
from starlette.applications import Starlette

from mcp_gateway.errors import InvalidInputError
from mcp_gateway.ingest.enrich import hash_email, hash_external_id, hash_phone
from mcp_gateway.integrations.platforms import (
    PLATFORMS,
    ForwardedEvent,
    ForwardedUser,
    Outcome,
    OutgoingRequest,
    Verdict,
    verify_webhook,
)
from mcp_gateway.integrations.platforms.webhook import WebhookVerificationError, new_secret, sign

from .fake_platforms import FakePlatforms, serve_fake_platforms

NOW_MS: Final = 1_765_000_000_000
"""A fixed "now" for payload tests (2025-12-06)."""
EMAIL_HASH: Final = hashlib.sha256(b"jane@example.com").hexdigest()
PHONE_HASH: Final = hashlib.sha256(b"14155550199").hexdigest()
USER_HASH: Final = hashlib.sha256(b"user-42").hexdigest()
META_EMAIL: Final = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
"""Meta's example: SHA-256 of "john_smith@gmail.com" (customer-information-parameters page)."""
META_PHONE: Final = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
"""Meta's example: SHA-256 of "16505551212", the US number (650)555-1212 with its country code."""
UA: Final = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"


def user(**overrides: Any) -> ForwardedUser:
    fields: dict[str, Any] = {
        "em": EMAIL_HASH,
        "ph": PHONE_HASH,
        "external_id": USER_HASH,
        "fbp": "fb.1.1764990000000.1234567890",
        "fbc": "fb.1.1764990000000.IwAR0abc",
        "client_ip_address": "203.0.113.7",
        "client_user_agent": UA,
        "client_id": "visitor-1",
    }
    return ForwardedUser(**(fields | overrides))


def event(
    name: str = "Purchase", event_id: str = "evt-1", time_ms: int = NOW_MS - 5_000, **over: Any
) -> ForwardedEvent:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "event_name": name,
        "event_time_ms": time_ms,
        "action_source": "website",
        "event_source_url": "https://shop.example/checkout?step=done",
        "user": user(),
        "custom_data": {"value": 49.5, "currency": "EUR", "content_ids": ["sku-1"]},
        "gateway_id": "demo",
    }
    return ForwardedEvent(**(fields | over))


def config(kind: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, dict[str, Any]] = {
        "meta": {"pixel_id": "1234567890", "access_token": "tok"},
        "ga4": {"measurement_id": "G-TEST1234", "api_secret": "sec"},
        "tiktok": {"pixel_code": "CTESTPIXEL0123", "access_token": "tok"},
        "webhook": {"url": "https://hooks.example/in", "secret": FakePlatforms.WEBHOOK_SECRET},
    }
    return PLATFORMS[kind].check_config(base[kind] | extra)


def body_of(request: OutgoingRequest) -> Any:
    return json.loads(request.body)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- hashing: our stored hashes are the platforms' documented normalisation ----------------------------------------


def test_stored_email_hash_is_metas_documented_example() -> None:
    # customer-information-parameters: "John_Smith@gmail.com" normalises to "john_smith@gmail.com".
    assert hash_email("  John_Smith@gmail.com ") == META_EMAIL


@pytest.mark.parametrize("written", ["+1 (650) 555-1212", "1-650-555-1212", "001 650 555 1212", "+1 650.555.1212"])
def test_stored_phone_hash_is_metas_documented_example(written: str) -> None:
    # customer-information-parameters: US "(650)555-1212" with its country code normalises to "16505551212".
    assert hash_phone(written) == META_PHONE


def test_phone_hash_keeps_ascii_digits_only() -> None:
    assert hash_phone("+1 650 555 1212 \u0661\u0662") == hash_phone("16505551212")
    assert hash_phone("no digits") is None
    assert hash_phone("000") is None


def test_external_id_hash_is_trimmed_and_lower_cased() -> None:
    assert hash_external_id("  User-42 ") == USER_HASH


async def test_the_hashes_track_stores_are_the_ones_meta_documents(http: httpx.AsyncClient, app: Starlette) -> None:
    user = {"email": " John_Smith@gmail.com", "phone": "00 1 (650) 555-1212", "external_id": "User-42"}
    response = await http.post(
        "/track", json={"event_name": "Lead", "event_id": "meta-vector", "user": user}, headers={"X-Gateway-ID": "demo"}
    )
    assert response.status_code == 200, response.text
    row = await app.state.services.store.get_event("demo", "meta-vector")
    assert row is not None and row.web is not None
    assert (row.web.email_hash, row.web.phone_hash, row.web.external_id_hash) == (META_EMAIL, META_PHONE, USER_HASH)
    forwarded = event(
        user=ForwardedUser(em=row.web.email_hash, ph=row.web.phone_hash), action_source="system_generated"
    )
    [request] = PLATFORMS["meta"].build_requests(config("meta"), [forwarded], now_ms=NOW_MS)
    assert body_of(request)["data"][0]["user_data"] == {"em": [META_EMAIL], "ph": [META_PHONE]}


# -- the registry and config checks ----------------------------------------------------------------------------------


def test_platforms_registry_names_each_adapter_with_its_batch_size_and_secrets() -> None:
    assert {kind: (p.kind, p.max_batch, sorted(p.secret_fields)) for kind, p in PLATFORMS.items()} == {
        "meta": ("meta", 1000, ["access_token"]),
        "ga4": ("ga4", 25, ["api_secret"]),
        "tiktok": ("tiktok", 1000, ["access_token"]),
        "webhook": ("webhook", 100, ["secret"]),
    }


def test_check_config_fills_defaults() -> None:
    assert config("meta") == {
        "pixel_id": "1234567890",
        "access_token": "tok",
        "test_event_code": None,
        "api_version": "v21.0",
        "endpoint": "https://graph.facebook.com",
        "event_map": {},
        "events": None,
    }
    assert config("ga4")["endpoint"] == "https://www.google-analytics.com"
    assert config("ga4")["debug"] is False
    assert config("tiktok")["endpoint"] == "https://business-api.tiktok.com"


@pytest.mark.parametrize(
    ("kind", "bad", "field"),
    [
        ("meta", {"pixel_id": 123}, "pixel_id"),
        ("meta", {"pixel_id": "12ab"}, "pixel_id"),
        ("meta", {"access_token": ""}, "access_token"),
        ("meta", {"api_version": "21"}, "api_version"),
        ("meta", {"endpoint": "ftp://x"}, "endpoint"),
        ("meta", {"endpoint": "https://x/?a=1"}, "endpoint"),
        ("meta", {"pixel": "1"}, "pixel"),
        ("meta", {"event_map": {"Purchase": 3}}, "event_map"),
        ("meta", {"events": "Purchase"}, "events"),
        ("ga4", {"measurement_id": "UA-1"}, "measurement_id"),
        ("ga4", {"debug": "yes"}, "debug"),
        ("ga4", {"debug": 0}, "debug"),
        ("ga4", {"event_map": {"Purchase": "1purchase"}}, "event_map"),
        ("ga4", {"event_map": {"Purchase": "session_start"}}, "event_map"),
        ("tiktok", {"pixel_code": "lower"}, "pixel_code"),
        ("webhook", {"secret": "plain"}, "secret"),
        ("webhook", {"secret": "whsec_" + base64.b64encode(b"short").decode()}, "secret"),
        ("webhook", {"url": "not a url"}, "url"),
        ("webhook", {"url": "https://[::1/in"}, "url"),
        ("webhook", {"url": "https://hooks.example:99999/in"}, "url"),
        ("webhook", {"url": "https://hooks.example/in#part"}, "url"),
        ("webhook", {"endpoint": "https://x"}, "endpoint"),
    ],
)
def test_check_config_names_the_bad_field(kind: str, bad: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        config(kind, **bad)
    assert caught.value.field == field


def test_a_webhook_url_may_carry_a_query_an_endpoint_may_not() -> None:
    assert config("webhook", url="https://hooks.example/in?token=abc")["url"] == "https://hooks.example/in?token=abc"
    with pytest.raises(InvalidInputError):
        config("meta", endpoint="https://graph.example/?x=1")


def test_check_config_refuses_a_non_object_as_a_whole() -> None:
    with pytest.raises(InvalidInputError) as caught:
        PLATFORMS["meta"].check_config([])  # type: ignore[arg-type]
    assert caught.value.field is None


def test_check_config_reads_null_optional_keys_as_their_defaults() -> None:
    nulls = {"endpoint": None, "event_map": None, "events": None, "test_event_code": None}
    assert config("meta", api_version=None, **nulls) == config("meta")
    assert config("ga4", debug=None, endpoint=None) == config("ga4")
    assert config("webhook", endpoint=None) == config("webhook")


# -- mapping and filter ----------------------------------------------------------------------------------------------


def names_sent(kind: str, cfg: dict[str, Any], events: Sequence[ForwardedEvent]) -> list[str]:
    sent = []
    for request in PLATFORMS[kind].build_requests(cfg, events, now_ms=NOW_MS):
        body = body_of(request)
        if kind == "ga4":
            sent += [e["name"] for e in body["events"]]
        elif kind == "tiktok":
            sent += [e["event"] for e in body["data"]]
        else:
            sent += [e["event_name"] for e in body["data"]]
    return sent


def test_default_maps_translate_our_names_to_each_platforms_standard_events() -> None:
    ours = [event(name, f"e{i}") for i, name in enumerate(["PageView", "Purchase", "Lead", "$lead", "StartTrial"])]
    assert names_sent("meta", config("meta"), ours) == ["PageView", "Purchase", "Lead", "Lead", "StartTrial"]
    assert names_sent("ga4", config("ga4"), ours) == [
        "page_view",
        "purchase",
        "generate_lead",
        "generate_lead",
        "start_trial",
    ]
    assert names_sent("tiktok", config("tiktok"), ours) == [
        "Pageview",
        "CompletePayment",
        "SubmitForm",
        "SubmitForm",
        "StartTrial",
    ]


def test_bookkeeping_events_are_not_forwarded_unless_mapped_or_listed() -> None:
    ours = [event("$session_start", "a"), event("Identify", "b"), event("Purchase", "c")]
    assert names_sent("meta", config("meta"), ours) == ["Purchase"]
    assert names_sent("meta", config("meta", event_map={"Identify": "CompleteRegistration"}), ours) == [
        "CompleteRegistration",
        "Purchase",
    ]
    assert names_sent("webhook", config("webhook", events=["$session_start"]), ours) == ["$session_start"]


def test_event_map_overrides_the_default_and_the_filter_drops_the_rest() -> None:
    cfg = config("meta", event_map={"Purchase": "BigPurchase"}, events=["Purchase", "Lead"])
    ours = [event("Purchase", "a"), event("PageView", "b"), event("Lead", "c")]
    requests = PLATFORMS["meta"].build_requests(cfg, ours, now_ms=NOW_MS)
    assert [r.event_ids for r in requests] == [("a", "c")]
    assert names_sent("meta", cfg, ours) == ["BigPurchase", "Lead"]


def test_a_filter_that_drops_everything_produces_no_request() -> None:
    for kind in PLATFORMS:
        assert PLATFORMS[kind].build_requests(config(kind, events=["Lead"]), [event("Purchase")], now_ms=NOW_MS) == []


# -- Meta ------------------------------------------------------------------------------------------------------------


def test_meta_payload_field_by_field() -> None:
    cfg = config("meta", test_event_code="TEST123", api_version="v22.0")
    [request] = PLATFORMS["meta"].build_requests(cfg, [event()], now_ms=NOW_MS)
    assert request.method == "POST"
    assert request.url == "https://graph.facebook.com/v22.0/1234567890/events"
    assert request.headers == {"Content-Type": "application/json"}
    assert request.event_ids == ("evt-1",)
    assert body_of(request) == {
        "data": [
            {
                "event_name": "Purchase",
                "event_time": (NOW_MS - 5_000) // 1000,
                "event_id": "evt-1",
                "action_source": "website",
                "event_source_url": "https://shop.example/checkout?step=done",
                "user_data": {
                    "em": [EMAIL_HASH],
                    "ph": [PHONE_HASH],
                    "external_id": [USER_HASH],
                    "fbp": "fb.1.1764990000000.1234567890",
                    "fbc": "fb.1.1764990000000.IwAR0abc",
                    "client_ip_address": "203.0.113.7",
                    "client_user_agent": UA,
                },
                "custom_data": {"value": 49.5, "currency": "EUR", "content_ids": ["sku-1"]},
            }
        ],
        "access_token": "tok",
        "test_event_code": "TEST123",
    }


def test_meta_leaves_out_absent_identifiers_and_anything_not_a_hash() -> None:
    sparse = event(user=ForwardedUser(em="not-a-hash", fbp="fb.1.1.2"), event_source_url=None, custom_data={})
    [request] = PLATFORMS["meta"].build_requests(config("meta"), [sparse], now_ms=NOW_MS)
    [data] = body_of(request)["data"]
    assert data["user_data"] == {"fbp": "fb.1.1.2"}
    assert "event_source_url" not in data and "custom_data" not in data
    assert "test_event_code" not in body_of(request)


def test_meta_batches_at_1000_events() -> None:
    many = [event(event_id=f"e{i}") for i in range(2501)]
    requests = PLATFORMS["meta"].build_requests(config("meta"), many, now_ms=NOW_MS)
    assert [len(r.event_ids) for r in requests] == [1000, 1000, 501]
    assert [len(body_of(r)["data"]) for r in requests] == [1000, 1000, 501]
    assert [i for r in requests for i in r.event_ids] == [f"e{i}" for i in range(2501)]


def test_meta_sends_events_meta_would_refuse_apart_so_they_cannot_sink_the_batch() -> None:
    old = [event(event_id=f"old{i}", time_ms=NOW_MS - 8 * 86_400_000) for i in range(2)]
    blind = event(event_id="blind", user=user(client_user_agent=None))
    anonymous = event(event_id="anonymous", user=ForwardedUser(client_id="visitor-9"))
    browser_only = event(event_id="browser-only", user=ForwardedUser(client_user_agent=UA))  # no IP to pair with
    ours = [old[0], event(event_id="a"), anonymous, blind, event(event_id="b"), old[1], browser_only]
    requests = PLATFORMS["meta"].build_requests(config("meta"), ours, now_ms=NOW_MS)
    assert [r.event_ids for r in requests] == [
        ("a", "blind", "b"),
        ("old0", "old1"),
        ("anonymous", "browser-only"),
    ]


def meta_error(code: int, subcode: int | None = None, transient: bool | None = None) -> bytes:
    error: dict[str, Any] = {"message": "Invalid parameter", "type": "OAuthException", "code": code}
    error["fbtrace_id"] = "AbCdEf"
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    return json.dumps({"error": error}).encode()


def test_meta_judge_success() -> None:
    answer = b'{"events_received": 1, "messages": [], "fbtrace_id": "x"}'
    assert PLATFORMS["meta"].judge(200, answer, {}) == Verdict(Outcome.DELIVERED)


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_meta_judge_throttling_codes_retry(code: int) -> None:
    verdict = PLATFORMS["meta"].judge(400, meta_error(code), {})
    assert verdict.outcome is Outcome.RETRY
    assert verdict.error is not None and f"OAuthException {code}/" in verdict.error


def test_meta_judge_server_errors_and_transient_errors_retry() -> None:
    assert PLATFORMS["meta"].judge(500, meta_error(1), {}).outcome is Outcome.RETRY
    assert PLATFORMS["meta"].judge(503, b"<html>down</html>", {"Retry-After": "30"}) == Verdict(
        Outcome.RETRY, "<html>down</html>", 30.0
    )
    assert PLATFORMS["meta"].judge(400, meta_error(100, 99, transient=True), {}).outcome is Outcome.RETRY
    assert PLATFORMS["meta"].judge(429, b"", {}).outcome is Outcome.RETRY


def test_meta_judge_permanent_errors_fail_with_metas_message() -> None:
    verdict = PLATFORMS["meta"].judge(400, meta_error(100, 2804019, transient=False), {})
    assert verdict == Verdict(Outcome.FAILED, "OAuthException 100/2804019: Invalid parameter (fbtrace_id AbCdEf)")
    assert PLATFORMS["meta"].judge(401, meta_error(190), {}).outcome is Outcome.FAILED
    assert PLATFORMS["meta"].judge(404, b"not json", {}) == Verdict(Outcome.FAILED, "not json")
    assert PLATFORMS["meta"].judge(400, b'{"error": {"code": [17]}}', {}).outcome is Outcome.FAILED


def test_meta_judge_keeps_long_errors_short() -> None:
    verdict = PLATFORMS["meta"].judge(400, b"x" * 50_000, {})
    assert verdict.error is not None and len(verdict.error) <= 1001


# -- GA4 -------------------------------------------------------------------------------------------------------------


def test_ga4_payload_field_by_field() -> None:
    [request] = PLATFORMS["ga4"].build_requests(config("ga4"), [event()], now_ms=NOW_MS)
    assert request.url == "https://www.google-analytics.com/mp/collect?measurement_id=G-TEST1234&api_secret=sec"
    assert request.headers == {"Content-Type": "application/json"}
    assert body_of(request) == {
        "client_id": "visitor-1",
        "user_id": USER_HASH,
        "timestamp_micros": (NOW_MS - 5_000) * 1000,
        "events": [
            {
                "name": "purchase",
                "timestamp_micros": (NOW_MS - 5_000) * 1000,
                "params": {
                    "page_location": "https://shop.example/checkout?step=done",
                    "value": 49.5,
                    "currency": "EUR",
                },
            }
        ],
    }


def test_ga4_debug_mode_posts_to_the_validation_endpoint() -> None:
    [request] = PLATFORMS["ga4"].build_requests(config("ga4", debug=True), [event()], now_ms=NOW_MS)
    assert request.url.startswith("https://www.google-analytics.com/debug/mp/collect?")


def test_ga4_groups_by_visitor_and_batches_at_25() -> None:
    mixed = [event(event_id=f"a{i}") for i in range(30)] + [
        event(event_id=f"b{i}", user=user(client_id="visitor-2", external_id=None)) for i in range(3)
    ]
    requests = PLATFORMS["ga4"].build_requests(config("ga4"), mixed, now_ms=NOW_MS)
    assert [(body_of(r)["client_id"], len(r.event_ids)) for r in requests] == [
        ("visitor-1", 25),
        ("visitor-1", 5),
        ("visitor-2", 3),
    ]
    assert "user_id" not in body_of(requests[2])


def test_ga4_cleans_parameters_before_sending_because_ga4_accepts_anything() -> None:
    messy = event(
        custom_data={
            "ok": "x" * 150,
            "nested": {"a": 1},
            "_reserved": 1,
            "ga_thing": 1,
            "bad-name": 1,
            "flag": True,
            "items": [{"item_id": "sku-1", "price": 3, "deep": {"no": 1}}],
            **{f"p{i}": i for i in range(40)},
        },
    )
    [request] = PLATFORMS["ga4"].build_requests(config("ga4"), [messy], now_ms=NOW_MS)
    params = body_of(request)["events"][0]["params"]
    assert len(params) == 25
    assert params["page_location"] == "https://shop.example/checkout?step=done"
    assert params["ok"] == "x" * 100
    assert params["items"] == [{"item_id": "sku-1", "price": 3}]
    assert not {"nested", "_reserved", "ga_thing", "bad-name", "flag"} & set(params)


def test_ga4_sends_events_it_would_drop_to_the_validation_server_alone() -> None:
    events = [
        event(event_id="keep"),
        event("9lives", "bad-name"),
        event("session_start", "reserved"),
        event(event_id="old", time_ms=NOW_MS - 73 * 3_600_000),
        event(event_id="anonymous", user=ForwardedUser()),
    ]
    requests = PLATFORMS["ga4"].build_requests(config("ga4"), events, now_ms=NOW_MS)
    assert [(r.url.split("?")[0], r.event_ids) for r in requests] == [
        ("https://www.google-analytics.com/mp/collect", ("keep",)),
        ("https://www.google-analytics.com/debug/mp/collect", ("bad-name",)),
        ("https://www.google-analytics.com/debug/mp/collect", ("reserved",)),
        ("https://www.google-analytics.com/debug/mp/collect", ("anonymous",)),
    ]
    assert "client_id" not in body_of(requests[3])


def test_ga4_derives_a_stable_client_id_from_the_hashed_user_id_for_an_event_without_a_visitor() -> None:
    server_events = [
        event(event_id=f"s{i}", user=ForwardedUser(external_id=USER_HASH), action_source="system_generated")
        for i in range(2)
    ]
    other = event(event_id="other", user=ForwardedUser(external_id=hashlib.sha256(b"user-43").hexdigest()))
    requests = PLATFORMS["ga4"].build_requests(config("ga4"), [*server_events, other], now_ms=NOW_MS)
    assert [(r.url.split("?")[0], r.event_ids) for r in requests] == [
        ("https://www.google-analytics.com/mp/collect", ("s0", "s1")),
        ("https://www.google-analytics.com/mp/collect", ("other",)),
    ]
    first, second = (body_of(r) for r in requests)
    digest = hashlib.sha256(b"ga4-client-id:" + USER_HASH.encode()).digest()
    assert first["client_id"] == f"{int.from_bytes(digest[:4], 'big')}.{int.from_bytes(digest[4:8], 'big')}"
    assert first["user_id"] == USER_HASH and USER_HASH not in first["client_id"]
    assert second["client_id"] != first["client_id"]
    visitor = PLATFORMS["ga4"].build_requests(config("ga4"), [event()], now_ms=NOW_MS)
    assert body_of(visitor[0])["client_id"] == "visitor-1"


def test_ga4_judge() -> None:
    ga4 = PLATFORMS["ga4"]
    assert ga4.judge(204, b"", {}) == Verdict(Outcome.DELIVERED)
    assert ga4.judge(200, b'{"validationMessages": []}', {}) == Verdict(Outcome.DELIVERED)
    invalid = b'{"validationMessages": [{"fieldPath": "events", "description": "bad", "validationCode": "X"}]}'
    verdict = ga4.judge(200, invalid, {})
    assert verdict.outcome is Outcome.FAILED and verdict.error is not None and '"description":"bad"' in verdict.error
    assert ga4.judge(429, b"", {"retry-after": "12"}) == Verdict(Outcome.RETRY, "HTTP 429", 12.0)
    assert ga4.judge(500, b"", {}).outcome is Outcome.RETRY
    assert ga4.judge(403, b"", {}) == Verdict(Outcome.FAILED, "HTTP 403")


# -- TikTok ----------------------------------------------------------------------------------------------------------


def test_tiktok_payload_field_by_field() -> None:
    [request] = PLATFORMS["tiktok"].build_requests(config("tiktok", test_event_code="TEST9"), [event()], now_ms=NOW_MS)
    assert request.url == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    assert request.headers == {"Content-Type": "application/json", "Access-Token": "tok"}
    assert body_of(request) == {
        "event_source": "web",
        "event_source_id": "CTESTPIXEL0123",
        "test_event_code": "TEST9",
        "data": [
            {
                "event": "CompletePayment",
                "event_time": (NOW_MS - 5_000) // 1000,
                "event_id": "evt-1",
                "user": {
                    "email": EMAIL_HASH,
                    "phone": PHONE_HASH,
                    "external_id": USER_HASH,
                    "ip": "203.0.113.7",
                    "user_agent": UA,
                },
                "page": {"url": "https://shop.example/checkout?step=done"},
                "properties": {"value": 49.5, "currency": "EUR", "content_ids": ["sku-1"]},
            }
        ],
    }


def tiktok_answer(code: int) -> bytes:
    return json.dumps({"code": code, "message": "m", "request_id": "r1", "data": {}}).encode()


def test_tiktok_judge_reads_the_code_in_a_200() -> None:
    tiktok = PLATFORMS["tiktok"]
    assert tiktok.judge(200, tiktok_answer(0), {}) == Verdict(Outcome.DELIVERED)
    assert tiktok.judge(200, tiktok_answer(40002), {}) == Verdict(
        Outcome.FAILED, "TikTok code 40002: m (request_id r1)"
    )
    assert tiktok.judge(200, tiktok_answer(40105), {}).outcome is Outcome.FAILED
    assert tiktok.judge(200, tiktok_answer(40100), {}).outcome is Outcome.RETRY
    assert tiktok.judge(200, tiktok_answer(50002), {}).outcome is Outcome.RETRY
    assert tiktok.judge(200, b"<html>", {}).outcome is Outcome.RETRY
    assert tiktok.judge(200, b'{"code": false}', {}).outcome is Outcome.RETRY
    assert tiktok.judge(502, b"", {}).outcome is Outcome.RETRY


# -- webhook ---------------------------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    signature = sign(FakePlatforms.WEBHOOK_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def webhook_request(now: int = NOW_MS) -> OutgoingRequest:
    [request] = PLATFORMS["webhook"].build_requests(config("webhook"), [event()], now_ms=now)
    return request


def test_webhook_payload_field_by_field() -> None:
    request = webhook_request()
    assert request.url == "https://hooks.example/in"
    assert request.headers["webhook-timestamp"] == str(NOW_MS // 1000)
    assert request.headers["webhook-id"].startswith("msg_")
    assert body_of(request) == {
        "type": "events.forwarded",
        "timestamp": "2025-12-06T05:46:40+00:00",
        "data": [
            {
                "event_id": "evt-1",
                "event_name": "Purchase",
                "event_time_ms": NOW_MS - 5_000,
                "action_source": "website",
                "event_source_url": "https://shop.example/checkout?step=done",
                "user": {
                    "em": EMAIL_HASH,
                    "ph": PHONE_HASH,
                    "external_id": USER_HASH,
                    "fbp": "fb.1.1764990000000.1234567890",
                    "fbc": "fb.1.1764990000000.IwAR0abc",
                    "client_ip_address": "203.0.113.7",
                    "client_user_agent": UA,
                    "client_id": "visitor-1",
                },
                "custom_data": {"value": 49.5, "currency": "EUR", "content_ids": ["sku-1"]},
                "gateway_id": "demo",
            }
        ],
    }


def test_a_retry_keeps_the_webhook_id_and_signs_a_fresh_timestamp() -> None:
    first, retry = webhook_request(NOW_MS), webhook_request(NOW_MS + 60_000)
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert first.headers["webhook-signature"] != retry.headers["webhook-signature"]


def test_verify_webhook_accepts_what_we_send() -> None:
    request = webhook_request()
    message_id = verify_webhook(
        FakePlatforms.WEBHOOK_SECRET, request.headers, request.body, 300, now_s=NOW_MS / 1000 + 299
    )
    assert message_id == request.headers["webhook-id"]


@pytest.mark.parametrize("skew_s", [301, -301, 86_400])
def test_verify_webhook_refuses_a_replay_outside_the_tolerance(skew_s: int) -> None:
    request = webhook_request()
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(FakePlatforms.WEBHOOK_SECRET, request.headers, request.body, 300, now_s=NOW_MS / 1000 + skew_s)


def test_verify_webhook_refuses_tampering() -> None:
    request = webhook_request()
    headers = dict(request.headers)
    at = NOW_MS / 1000
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(FakePlatforms.WEBHOOK_SECRET, headers, request.body.replace(b"49.5", b"4950"), now_s=at)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(new_secret(), headers, request.body, now_s=at)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(FakePlatforms.WEBHOOK_SECRET, headers | {"webhook-id": "msg_other"}, request.body, now_s=at)
    moved = headers | {"webhook-timestamp": str(int(at) + 1)}
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(FakePlatforms.WEBHOOK_SECRET, moved, request.body, now_s=at)
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        partial = {k: v for k, v in headers.items() if k != missing}
        with pytest.raises(WebhookVerificationError, match="malformed"):
            verify_webhook(FakePlatforms.WEBHOOK_SECRET, partial, request.body, now_s=at)


def test_verify_webhook_accepts_any_of_several_signatures_while_a_secret_rotates() -> None:
    request = webhook_request()
    headers = dict(request.headers)
    headers["Webhook-Signature"] = "v1,bm9wZQ== " + headers.pop("webhook-signature")
    assert verify_webhook(FakePlatforms.WEBHOOK_SECRET, headers, request.body, now_s=NOW_MS / 1000)


def test_webhook_judge() -> None:
    webhook = PLATFORMS["webhook"]
    assert webhook.judge(204, b"", {}) == Verdict(Outcome.DELIVERED)
    assert webhook.judge(301, b"", {}).outcome is Outcome.FAILED
    assert webhook.judge(410, b"gone", {}) == Verdict(Outcome.FAILED, "gone")
    assert webhook.judge(408, b"", {}).outcome is Outcome.RETRY
    assert webhook.judge(429, b"", {"Retry-After": "5"}) == Verdict(Outcome.RETRY, "HTTP 429", 5.0)


# -- over real sockets, to the fakes ----------------------------------------------------------------------------------


@pytest.fixture
def fakes() -> Iterator[FakePlatforms]:
    with serve_fake_platforms() as running:
        yield running


def send(kind: str, cfg: dict[str, Any], events: Sequence[ForwardedEvent]) -> list[Verdict]:
    platform = PLATFORMS[kind]
    verdicts = []
    with httpx.Client(timeout=10) as client:
        for request in platform.build_requests(platform.check_config(cfg), events, now_ms=now_ms()):
            response = client.request(request.method, request.url, headers=request.headers, content=request.body)
            verdicts.append(platform.judge(response.status_code, response.content, response.headers))
    return verdicts


def live_events(count: int = 3) -> list[ForwardedEvent]:
    return [event(event_id=f"live-{i}", time_ms=now_ms() - 1000) for i in range(count)]


@pytest.mark.parametrize("kind", ["meta", "ga4", "tiktok", "webhook"])
def test_each_platform_delivers_to_its_fake_which_finds_nothing_wrong(fakes: FakePlatforms, kind: str) -> None:
    assert send(kind, fakes.configs()[kind], live_events()) == [Verdict(Outcome.DELIVERED)]
    endpoint = getattr(fakes, kind)
    assert [r.problems for r in endpoint.requests] == [[]]
    ids = [e.get("event_id") for e in endpoint.accepted_events()]
    assert ids == (["live-0", "live-1", "live-2"] if kind != "ga4" else [None, None, None])


def test_ga4_debug_against_the_fake_is_judged_by_its_validation_messages(fakes: FakePlatforms) -> None:
    cfg = fakes.configs()["ga4"] | {"debug": True}
    assert send("ga4", cfg, live_events(1)) == [Verdict(Outcome.DELIVERED)]
    wrong_secret = cfg | {"api_secret": "wrong"}
    [verdict] = send("ga4", wrong_secret, live_events(1))
    assert verdict.outcome is Outcome.FAILED and verdict.error is not None and "api_secret" in verdict.error
    assert fakes.ga4.accepted_events() == []


def test_the_ga4_fake_answers_2xx_to_a_bad_payload_like_ga4(fakes: FakePlatforms) -> None:
    response = httpx.post(
        f"{fakes.base_url}/mp/collect?measurement_id={fakes.GA4_MEASUREMENT_ID}&api_secret={fakes.GA4_SECRET}",
        json={"client_id": "c", "events": [{"name": "1bad"}]},
    )
    assert response.status_code == 204
    assert PLATFORMS["ga4"].judge(response.status_code, response.content, response.headers).outcome is Outcome.DELIVERED
    assert fakes.ga4.requests[0].problems and fakes.ga4.accepted_events() == []


@pytest.mark.parametrize("kind", ["meta", "ga4", "tiktok", "webhook"])
def test_each_fake_throttles_then_recovers_and_each_adapter_retries(fakes: FakePlatforms, kind: str) -> None:
    getattr(fakes, kind).fail(2, "throttle", retry_after=7)
    cfg = fakes.configs()[kind]
    first, second, third = (send(kind, cfg, live_events(1))[0] for _ in range(3))
    assert first.outcome is second.outcome is Outcome.RETRY
    assert third == Verdict(Outcome.DELIVERED)
    if kind in ("ga4", "webhook", "meta"):
        assert first.retry_after_s == 7.0


@pytest.mark.parametrize("kind", ["meta", "ga4", "tiktok", "webhook"])
def test_each_fake_fails_the_platform_way_and_each_adapter_judges_it(fakes: FakePlatforms, kind: str) -> None:
    endpoint = getattr(fakes, kind)
    endpoint.fail(1, "server")
    [server] = send(kind, fakes.configs()[kind], live_events(1))
    assert server.outcome is Outcome.RETRY
    endpoint.fail(1, "permanent")
    [permanent] = send(kind, fakes.configs()[kind], live_events(1))
    assert permanent.outcome is Outcome.FAILED and permanent.error
    endpoint.recover()
    assert send(kind, fakes.configs()[kind], live_events(1)) == [Verdict(Outcome.DELIVERED)]


def test_the_meta_fake_refuses_what_meta_refuses(fakes: FakePlatforms) -> None:
    cfg = fakes.configs()["meta"]
    [no_agent] = send("meta", cfg, [event(time_ms=now_ms(), user=ForwardedUser(em=EMAIL_HASH))])
    assert no_agent == Verdict(Outcome.DELIVERED)
    assert [len(r.warnings) for r in fakes.meta.requests] == [1]
    [anonymous] = send("meta", cfg, [event(time_ms=now_ms(), user=ForwardedUser())])
    assert anonymous.outcome is Outcome.FAILED
    assert anonymous.error is not None and "customer information" in anonymous.error
    [bad_token] = send("meta", cfg | {"access_token": "wrong"}, live_events(1))
    assert bad_token.outcome is Outcome.FAILED and bad_token.error is not None and "190" in bad_token.error


def test_one_bad_event_fails_alone_and_the_rest_of_the_batch_is_delivered(fakes: FakePlatforms) -> None:
    stale = event(event_id="stale", time_ms=now_ms() - 8 * 86_400_000)
    anonymous = event(event_id="anonymous", time_ms=now_ms(), user=ForwardedUser(client_id="visitor-9"))
    good = live_events(2)
    delivered, old, unknown = send("meta", fakes.configs()["meta"], [good[0], stale, anonymous, good[1]])
    assert delivered == Verdict(Outcome.DELIVERED)
    assert old.outcome is Outcome.FAILED and old.error is not None and "7 days" in old.error
    assert unknown.outcome is Outcome.FAILED and unknown.error is not None and "customer information" in unknown.error
    assert [e["event_id"] for e in fakes.meta.accepted_events()] == ["live-0", "live-1"]
    verdicts = send("ga4", fakes.configs()["ga4"], [good[0], event("1st_visit", "bad", time_ms=now_ms())])
    assert verdicts[0] == Verdict(Outcome.DELIVERED)
    assert (
        verdicts[1].outcome is Outcome.FAILED and verdicts[1].error is not None and "NAME_INVALID" in verdicts[1].error
    )
    assert len(fakes.ga4.accepted_events()) == 1


def test_the_tiktok_fake_refuses_a_bad_token_with_code_40105(fakes: FakePlatforms) -> None:
    [verdict] = send("tiktok", fakes.configs()["tiktok"] | {"access_token": "wrong"}, live_events(1))
    assert verdict.outcome is Outcome.FAILED and verdict.error is not None and "40105" in verdict.error


def test_the_webhook_fake_refuses_a_wrong_signature_and_counts_redeliveries(fakes: FakePlatforms) -> None:
    [wrong] = send("webhook", fakes.configs()["webhook"] | {"secret": new_secret()}, live_events(1))
    assert wrong.outcome is Outcome.FAILED
    events = live_events(2)
    assert send("webhook", fakes.configs()["webhook"], events) == [Verdict(Outcome.DELIVERED)]
    assert send("webhook", fakes.configs()["webhook"], events) == [Verdict(Outcome.DELIVERED)]
    assert fakes.webhook.duplicates == 1
    assert [e["event_id"] for e in fakes.webhook.accepted_events()] == ["live-0", "live-1"]


@pytest.mark.parametrize("kind", ["meta", "ga4", "tiktok", "webhook"])
def test_check_config_accepts_its_own_output_unchanged(kind: str) -> None:
    checked = config(kind, event_map={"Purchase": "purchase_done"}, events=["Purchase"])
    assert PLATFORMS[kind].check_config(checked) == checked


def test_a_slow_fake_makes_the_sender_time_out_until_it_recovers(fakes: FakePlatforms) -> None:
    fakes.tiktok.slow(1.0)
    [request] = PLATFORMS["tiktok"].build_requests(
        PLATFORMS["tiktok"].check_config(fakes.configs()["tiktok"]), live_events(1), now_ms=now_ms()
    )
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(request.url, headers=request.headers, content=request.body, timeout=0.1)
    fakes.tiktok.recover()
    assert send("tiktok", fakes.configs()["tiktok"], live_events(1)) == [Verdict(Outcome.DELIVERED)]


def test_values_json_cannot_hold_are_sent_as_null_or_text() -> None:
    odd = event(custom_data={"value": float("nan"), "max": float("inf"), "nested": {"on": datetime.date(2025, 1, 2)}})
    [request] = PLATFORMS["meta"].build_requests(config("meta"), [odd], now_ms=NOW_MS)
    assert body_of(request)["data"][0]["custom_data"] == {"value": None, "max": None, "nested": {"on": "2025-01-02"}}


@pytest.mark.parametrize("kind", ["meta", "ga4", "tiktok", "webhook"])
@pytest.mark.parametrize("status", [200, 204, 302, 400, 429, 503])
def test_judge_reads_any_answer_without_raising(kind: str, status: int) -> None:
    bodies = [
        b"",
        b"null",
        b"[]",
        b'"text"',
        b"\xff\xfe\x00",
        b'{"error": "x"}',
        b'{"error": null}',
        b'{"error": {"code": {"a": 1}, "message": null}}',
        b'{"validationMessages": "x"}',
        b'{"validationMessages": [null]}',
        b'{"code": "0"}',
        b'{"code": 1e400}',
        b"{" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for body in bodies:
        verdict = PLATFORMS[kind].judge(status, body, {"Retry-After": "soon"})
        assert isinstance(verdict.outcome, Outcome)
        assert verdict.error is None or len(verdict.error) <= 1001
