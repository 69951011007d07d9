"""Rows of a batch's (gateway, id) keys, many ids per query: the writer's way to ask "which of these exist"."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from .base import Connection

IDS_PER_QUERY: Final = 500
"""Ids in one `IN (...)` list: few round trips, well under either database's parameter limit."""


def rows_by_ids(conn: Connection, select: str, keys: Iterable[tuple[str, str]]) -> Iterator[Any]:
    """The rows `select` (a SELECT ending in `WHERE gateway_id = ? AND id IN`) finds for (gateway_id, id) `keys`,
    one query per gateway and `IDS_PER_QUERY` ids."""
    by_gateway: dict[str, list[str]] = {}
    for gateway_id, item_id in keys:
        by_gateway.setdefault(gateway_id, []).append(item_id)
    for gateway_id, ids in by_gateway.items():
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            yield from conn.execute(f"{select} ({', '.join('?' * len(chunk))})", (gateway_id, *chunk))
