"""The dashboard at /dashboard: a read-key login, then one server-rendered page of the gateway's analytics.

Every figure comes from the analytics questions (`mcp_gateway.analytics.QUESTIONS`), charts are SVG
drawn on the server, and the only scripts are the live feed's `EventSource` on `/stream` and the one
that fills the slow cards from `/dashboard/sections/{id}` (`?full=1` renders them all on the server).
"""

from .routes import Dashboard

__all__ = ["Dashboard"]
