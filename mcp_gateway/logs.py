"""How the gateway logs: `text` (a line a human reads) or `json` (one object per line, for a log pipeline).

    {"ts": "2026-12-04T01:09:23.412Z", "level": "info", "logger": "uvicorn.access",
     "message": "127.0.0.1:50412 - \"POST /track HTTP/1.1\" 200", "exception": "Traceback ..."}

`exception` is there only when the record carries one. With `json`, uvicorn's own loggers (startup,
access lines) go through the same handler instead of uvicorn's text format.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, log_format: LogFormat) -> None:
    """Send every logger's records to stderr in `log_format`, from `level` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
