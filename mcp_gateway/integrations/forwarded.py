"""An outbox payload (`store.outbox.forward_payload`) back as the `ForwardedEvent` the platforms take."""

from __future__ import annotations

import dataclasses
from typing import Any

from .platforms import ForwardedEvent, ForwardedUser

_USER_FIELDS = frozenset(field.name for field in dataclasses.fields(ForwardedUser))


def decode(payload: dict[str, Any]) -> ForwardedEvent:
    user = payload.get("user") or {}
    return ForwardedEvent(
        event_id=str(payload["event_id"]),
        event_name=str(payload["event_name"]),
        event_time_ms=int(payload["event_time_ms"]),
        action_source=str(payload["action_source"]),
        event_source_url=payload.get("event_source_url"),
        user=ForwardedUser(**{key: value for key, value in user.items() if key in _USER_FIELDS}),
        custom_data=payload.get("custom_data") or {},
        gateway_id=str(payload["gateway_id"]),
    )


def with_client(event: ForwardedEvent, client_ip: str | None, user_agent: str | None) -> ForwardedEvent:
    """`event` with the IP and user agent of the request in flight (synchronous forwarding only: the IP is never
    stored; a browser event's user agent is in its payload already, and stays when the request names none)."""
    agent = user_agent or event.user.client_user_agent
    user = dataclasses.replace(event.user, client_ip_address=client_ip, client_user_agent=agent)
    return dataclasses.replace(event, user=user)
