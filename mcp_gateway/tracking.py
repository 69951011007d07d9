"""Compatibility: `mcp_gateway.tracking` was the wrapper's home before it became its own distribution.

Import it from `mcp_gateway_tracking` (`pip install mcp-gateway-tracking`), which needs neither the gateway nor
its dependencies; its public names stay importable from here so that code written against the old path keeps working.
"""

import mcp_gateway_tracking as _sdk
from mcp_gateway_tracking import *  # noqa: F403  (the SDK's `__all__`, pinned by tests/tracking/test_public_api.py)

__all__ = _sdk.__all__
