"""Where the tracking library logs: under the seed's logger name, `agnost`.

    logging.getLogger("agnost").setLevel(logging.DEBUG)   # the seed's way to see what the SDK does

Each module logs on a child of it (`agnost.middleware`, `agnost.sinks`, `agnost.http_sink`, `agnost.spool`), so
that one line turns them all up or down, and a record still says which part wrote it.
"""

from __future__ import annotations

import logging
from typing import Final

SDK_LOGGER: Final = "agnost"
"""The seed's logger name for its SDKs."""


def sdk_logger(module: str) -> logging.Logger:
    """The logger of the tracking module named `module` (its `__name__`): a child of `SDK_LOGGER`."""
    return logging.getLogger(f"{SDK_LOGGER}.{module.rpartition('.')[2]}")
