"""The event vocabulary: every event name and page-context key the gateway itself gives a meaning to.

One documented vocabulary, seed 000's (Meta's standard event names, PascalCase): `tracker.js` sends
`PageView` on load and on `page()`, `Identify` on `identify()`, and a site sends `Purchase`,
`Lead`, `AddToCart`, ... with `track()`. Reports and funnels should use these names.

Other seeds' page-view spellings are read as page views too (`PAGE_VIEW_NAMES`: seed 002's
`page_view`, seed 004's `$pageview`), so a store fed by their SDKs still fills "Top pages" and
"Page views"; a funnel or `/events` filter matches the name as it was sent.

Names starting with `$` are the gateway's own bookkeeping (seed 001 visits, lead capture).

This module imports nothing of the gateway: the store, ingest, analytics and the dashboard all read
it, so it sits below every one of them.
"""

from __future__ import annotations

from typing import Final

PAGE_VIEW: Final = "PageView"
"""A page was shown: what `tracker.js` sends on load and on `page()`."""
IDENTIFY: Final = "Identify"
"""`tracker.js`'s `identify(userId, traits)`: the visitor is now a known user."""
IDENTITY_LINK: Final = "$identify"
"""Seed 004's `POST /v1/identify`: stored with the visitor's `anonymous_id` and the user's hashed id, it links the
two (the store's `identities` table), so the visitor's events, earlier and later, count for that user."""

STANDARD_EVENTS: Final = (
    PAGE_VIEW,
    "ViewContent",
    "Search",
    "AddToCart",
    "AddToWishlist",
    "InitiateCheckout",
    "AddPaymentInfo",
    "Purchase",
    "Lead",
    "CompleteRegistration",
    "Contact",
    "Subscribe",
    "StartTrial",
)
"""Seed 000's (Meta's) standard web event names, for documentation and dashboards' suggestions."""

PAGE_VIEW_NAMES: Final = frozenset({PAGE_VIEW, "page_view", "$pageview"})
"""Event names counted as page views: ours (seed 000's tracker.js), seed 002's and seed 004's."""

SESSION_START: Final = "$session_start"
"""Seed 001's start of a visit (`POST /track/session/start`)."""
SESSION_END: Final = "$session_end"
"""Seed 001's end of a visit, whose properties carry the visit's `engagement_score`."""
SESSION_BOOKKEEPING: Final = frozenset({SESSION_START, SESSION_END})
LEAD: Final = "$lead"
"""A lead captured from a web form (`POST /lead.capture`)."""
LEAD_EVENT_ID_PREFIX: Final = "lead_"
"""A `$lead` event's id is this prefix and its lead's id (`lead_event_id`): the one event of each web lead."""
BOOK_DEMO: Final = "book_demo"
"""The MCP tool that captures a lead from an agent: its calls are the agent side's conversions."""
TRACK_EVENT: Final = "track_event"
"""The MCP tool through which an agent records an event of its own."""


def lead_event_id(lead_id: str) -> str:
    """The id of the `$lead` event stored with the web lead `lead_id` (analytics joins them on it)."""
    return f"{LEAD_EVENT_ID_PREFIX}{lead_id}"


EXPERIMENT_EXPOSURE: Final = "$experiment_exposure"
"""A visitor saw a variant of an A/B experiment (`tracker.js` `getVariant`, once per visitor and experiment): its
properties name the experiment (`EXPERIMENT`, its id) and the variant (`VARIANT`)."""
EXPERIMENT: Final = "experiment"
"""Property key of the experiment an event belongs to: its id (or, sent by hand as seed 002's playbook does, its
name), with `VARIANT` beside it."""
VARIANT: Final = "variant"
"""Property key of the variant an event was shown, beside `EXPERIMENT`."""
EXPERIMENTS: Final = "$experiments"
"""Property key of every variant a visitor is assigned, `{experiment id: variant}`: `tracker.js` tags each event
with it once assigned, so a goal event ties back to the variants its visitor saw."""

# -- the page context every web event carries -----------------------------------------------------

URL: Final = "url"
PATH: Final = "path"
REFERRER: Final = "referrer"
TITLE: Final = "title"
"""The page's `document.title`; kept in the event's properties under this key."""
PAGE: Final = "page"
"""The page's name (`page(name)`, default the title); kept in the event's properties under this key."""
PAGE_NAME_ALIASES: Final = (PAGE, "page_name")
"""Property keys a page's name arrives under: seed 002's tracker's `page`, our first tracker.js's `page_name`."""
