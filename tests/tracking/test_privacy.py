"""Sensitive values are hashed wherever they sit, and nothing else is touched."""

from __future__ import annotations

import hashlib
import json

import pytest

from mcp_gateway.privacy import MAX_DEPTH, TOO_DEEP, hash_text
from mcp_gateway.tracking import DEFAULT_SENSITIVE_KEYS, Redactor


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
