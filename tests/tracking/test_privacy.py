"""Sensitive values are hashed wherever they sit, and nothing else is touched."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time

import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp_gateway_tracking import DEFAULT_SENSITIVE_KEYS, LocalSink, Redactor, track_mcp
from mcp_gateway_tracking.middleware import _replace_words
from mcp_gateway_tracking.pii import EMAIL_IN_TEXT, PHONE_IN_TEXT, SCAN_CHUNK_CHARS, looks_like_phone
from mcp_gateway_tracking.privacy import MAX_DEPTH, TOO_DEEP, exceeds, hash_text, redact_text

from mcp_gateway.privacy import SdkLogRedaction

from .helpers import Recorder


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_every_default_sensitive_key_is_hashed() -> None:
    redactor = Redactor()
    data = {key: "value" for key in DEFAULT_SENSITIVE_KEYS}
    assert redactor.redact(data) == {key: sha("value") for key in DEFAULT_SENSITIVE_KEYS}


@pytest.mark.parametrize(
    "key",
    [
        "userEmail",
        "user_email",
        "Email",
        "X-Api-Key",
        "access_token",
        "refreshToken",
        "passwordConfirmation",
        "Set-Cookie",
        "creditCard",
        "client_secret",
    ],
)
def test_key_variants_count_as_sensitive(key: str) -> None:
    assert Redactor().is_sensitive(key)


@pytest.mark.parametrize("key", ["className", "name", "plan", "lessons", "description"])
def test_ordinary_keys_are_left_alone(key: str) -> None:
    assert not Redactor().is_sensitive(key)


def test_emails_are_trimmed_and_lowercased_before_hashing() -> None:
    redactor = Redactor()
    assert redactor.redact({"email": "  Jane.Doe@Example.COM "}) == {"email": sha("jane.doe@example.com")}
    assert redactor.redact({"password": "  Secret "}) == {"password": sha("Secret")}


def test_hashing_goes_through_nested_objects_arrays_and_json_strings() -> None:
    redactor = Redactor()
    value = {
        "user": {"name": "Jane", "contacts": [{"phone": "+1 555 0100"}, {"email": "j@x.io"}]},
        "content": [{"type": "text", "text": json.dumps({"token": "abc", "ok": True})}],
        "note": "{not json",
    }
    redacted = redactor.redact(value)
    assert redacted["user"] == {"name": "Jane", "contacts": [{"phone": sha("+1 555 0100")}, {"email": sha("j@x.io")}]}
    assert json.loads(redacted["content"][0]["text"]) == {"token": sha("abc"), "ok": True}
    assert redacted["note"] == "{not json"


def test_non_string_values_are_hashed_as_canonical_json_and_none_stays_none() -> None:
    redactor = Redactor()
    redacted = redactor.redact({"ssn": 123456789, "secret": {"b": 1, "a": [2]}, "token": None})
    assert redacted == {"ssn": sha("123456789"), "secret": sha('{"a":[2],"b":1}'), "token": None}


def test_the_input_is_not_modified() -> None:
    value = {"password": "p", "inner": {"token": "t"}}
    Redactor().redact(value)
    assert value == {"password": "p", "inner": {"token": "t"}}


def test_nesting_past_the_limit_is_omitted() -> None:
    value: object = "leaf"
    for _ in range(MAX_DEPTH + 5):
        value = {"k": value}
    text = json.dumps(Redactor().redact(value))
    assert TOO_DEEP in text and "leaf" not in text


def test_custom_sensitive_keys_replace_the_defaults() -> None:
    redactor = Redactor(["order_id"])
    assert redactor.redact({"orderId": "o-1", "email": "a@b.c"}) == {"orderId": sha("o-1"), "email": "a@b.c"}


def test_hash_text_is_sha256_with_its_prefix() -> None:
    assert hash_text("x") == "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


def test_json_text_is_compact_and_capped() -> None:
    text = Redactor().to_json_text({"a": "x" * 100, "password": "p"}, limit=50)
    assert text.startswith('{"a":"xxx') and "truncated" in text and 'p"' not in text


# -- phones, URLs and free text (pii.py) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("+44 20 7946 0958", "442079460958"),
        ("+15551234567", "15551234567"),
        ("+1 (555) 123-4567", "15551234567"),
        ("555-123-4567", "5551234567"),
        ("(555) 123 4567", "5551234567"),
        ("020 7946 0958", "02079460958"),
        ("call 555.123.4567.", "5551234567"),
    ],
)
def test_phone_numbers_in_free_text_are_hashed_by_their_digits(text: str, digits: str) -> None:
    redacted = redact_text(text)
    assert hash_text(digits) in redacted
    assert not any(c.isdigit() for c in redacted.replace(hash_text(digits), ""))


@pytest.mark.parametrize(
    "text",
    [
        "1733500000000",
        "2026-05-16T19:00:00Z",
        "2026-05-16 19:00:00",
        "16.05.2026 19:00",
        "2026-05-16-1234",
        "$1,299.00 or 49.99",
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-5678-1234-567812345678",
        "evt_123456789",
        "order 5551234567",
        "version 1.2.3",
        "555-1234",
        "+1234567",
    ],
)
def test_timestamps_ids_prices_and_short_numbers_are_not_phones(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize("key", ["mobile", "home_tel", "telNumber", "mobilePhone", "MSISDN", "fax", "phone_number"])
def test_phone_keys_are_sensitive_by_word(key: str) -> None:
    assert Redactor().is_sensitive(key)


@pytest.mark.parametrize("key", ["hotel", "telemetry", "automobile", "cellar_door", "title"])
def test_words_that_merely_contain_a_phone_word_are_not(key: str) -> None:
    assert not Redactor().is_sensitive(key)


def test_urls_have_sensitive_parameters_emails_phones_and_user_info_hashed_and_the_rest_kept() -> None:
    redactor = Redactor()
    url = "https://bob:pw@shop.example/u/Ada%40Example.com/x?email=a%40b.io&utm_source=news&q=hi+there#access_token=t1"
    redacted = redactor.redact_url(url)
    assert redacted == (
        f"https://{hash_text('bob:pw')}@shop.example/u/{hash_text('ada@example.com')}/x"
        f"?email={hash_text('a@b.io')}&utm_source=news&q=hi+there#access_token={hash_text('t1')}"
    )
    plain = "https://shop.example/p?utm_source=news&q=a+b%20c#top"
    assert redactor.redact_url(plain) == plain  # nothing to hide: byte for byte
    assert redactor.redact({"next": "/login?token=abc"}) == {"next": f"/login?token={hash_text('abc')}"}


def test_urls_inside_free_text_are_redacted_like_urls() -> None:
    message = "Unknown resource: docs://x/y?token=secret1 (try again)"
    assert Redactor().redact(message) == f"Unknown resource: docs://x/y?token={hash_text('secret1')} (try again)"


def test_redacting_twice_changes_nothing() -> None:
    redactor = Redactor()
    value = {
        "email": "ada@example.com",
        "note": "ada@example.com, +44 20 7946 0958, https://x.io/?phone=5551234567&a=1",
        "hashed": hash_text("kept"),
        "args": json.dumps({"password": "p", "text": "call 555-123-4567"}),
    }
    once = redactor.redact(value)
    assert redactor.redact(once) == once
    assert once["hashed"] == hash_text("kept")


def test_long_text_is_scanned_in_chunks_with_the_same_result_as_one_pass() -> None:
    pieces = ["ada@example.com", "+44 20 7946 0958", " ", "x", "555-123-4567", "1", "a.b", "@", "-"]
    rng = random.Random(7)
    text = "".join(rng.choice(pieces) for _ in range(40_000))
    one_pass = PHONE_IN_TEXT.sub(
        lambda m: hash_text(re.sub(r"\D", "", m.group())) if looks_like_phone(m.group()) else m.group(),
        EMAIL_IN_TEXT.sub(lambda m: hash_text(m.group().lower()), text),
    )
    assert len(text) > 4 * SCAN_CHUNK_CHARS
    assert redact_text(text) == one_pass


def test_the_sdk_log_line_of_a_failed_resource_read_names_no_uri() -> None:
    uri = "docs://ada@example.com/x?token=t"
    record = logging.LogRecord("mcp", logging.INFO, "f", 1, "Resource %r failed: %r", (uri, f"Unknown: {uri}"), None)
    assert SdkLogRedaction().filter(record)
    assert "ada" not in record.getMessage() and "token" not in record.getMessage()
    assert hash_text(uri) in record.getMessage()


def test_the_size_check_stops_counting_past_its_limit() -> None:
    assert not exceeds({"a": "b", "c": [1, 2]}, 100)
    assert exceeds({"a": "x" * 101}, 100)
    assert exceeds({str(i): i for i in range(100_000)}, 100) and exceeds(list(range(100_000)), 100)
    assert exceeds([{"b": "x"}] * 100_000, 100)


async def test_private_arguments_are_hashed_in_the_args_and_wherever_the_result_repeats_them() -> None:
    recorder = Recorder()
    server = MCPServer("leads")

    @server.tool()
    def book(name: str, company: str) -> dict[str, str]:
        return {"id": "abc-123", "status": "booked", "message": f"Booked for {name} of {company}."}

    private = {"book": ["name", "company"]}
    tracker = track_mcp(server, "org-1", sink=LocalSink(recorder, batch_size=10), private_arguments=private)
    async with Client(server) as client:
        assert not (await client.call_tool("book", {"name": "Ada Lovelace", "company": "abc"})).is_error
    assert await tracker.flush(5)
    await tracker.aclose()

    event = recorder.event("book")
    assert event.args is not None and event.result is not None
    assert json.loads(event.args) == {"name": sha("Ada Lovelace"), "company": sha("abc")}
    assert "Ada" not in event.result and f"Booked for {sha('Ada Lovelace')} of {sha('abc')}." in event.result
    assert '"id":"abc-123"' in event.result and '"status":"booked"' in event.result  # whole words only


def test_private_values_are_replaced_as_whole_words_longest_first_in_one_pass() -> None:
    replacements = {"Ada": "P1", "Ada Lovelace": "P2", "abc": "P3"}
    longest_first = sorted(replacements, key=len, reverse=True)
    text = "Ada Lovelace, Ada, Adam, abc-123, x_abc, (abc), Ada Lovelaces"
    assert _replace_words(text, replacements, longest_first) == "P2, P1, Adam, abc-123, x_abc, (P3), P1 Lovelaces"
    assert _replace_words("nothing here", replacements, longest_first) == "nothing here"


def test_private_value_replacement_stays_linear_on_a_megabyte_of_repeats() -> None:
    text = "abc " * 250_000 + "abcabc" * 100_000
    started = time.perf_counter()
    out = _replace_words(text, {"abc": "P"}, ["abc"])
    assert out.startswith("P P P") and out.endswith("abcabc")
    assert time.perf_counter() - started < 5  # loose: quadratic work would take minutes
