"""A bounded on-disk spool of undelivered items, so they survive a restart of the process.

The spool is a directory of JSON Lines segment files, one per batch set aside, named so that
sorting them by name sorts them by age: `<time_ns>-<pid>-<seq>.jsonl`. A line is
`{"org": ..., "kind": "session" | "event", "item": {...}}`. Segments are written to a temporary
file and renamed into place, so a crash leaves either a whole segment or none. The spool holds at
most `max_bytes`; a batch that does not fit is refused and the caller counts it as dropped.
Oldest segments are delivered first, which keeps sessions ahead of their events.

One process per spool directory: two processes draining the same directory would deliver its
items twice. The methods do blocking file I/O; the HTTP sink calls them from a worker thread.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from ._logging import sdk_logger
from .sinks import CaptureItem, Entry
from .wire import CaptureEvent, CaptureSession

logger = sdk_logger(__name__)

DEFAULT_MAX_SPOOL_BYTES: Final = 50 * 1024 * 1024
"""Largest the spool directory may grow (50 MiB)."""

SEGMENT_SUFFIX: Final = ".jsonl"
_TMP_SUFFIX: Final = ".tmp"


def default_spool_dir(key: str) -> Path:
    """`$XDG_CACHE_HOME/mcp-gateway/tracking-spool/<key>` (`~/.cache`, or the temp dir, without one)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory
            base = tempfile.gettempdir()
    return Path(base) / "mcp-gateway" / "tracking-spool" / key


def _encode(org: str, item: CaptureItem) -> str:
    kind = "session" if isinstance(item, CaptureSession) else "event"
    record = {"org": org, "kind": kind, "item": item.model_dump(mode="json", exclude_none=True)}
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _decode(line: str) -> Entry | None:
    try:
        record: Any = json.loads(line)
        org, kind, body = record["org"], record["kind"], record["item"]
        item: CaptureItem
        if kind == "session":
            item = CaptureSession.model_validate(body)
        elif kind == "event":
            item = CaptureEvent.model_validate(body)
        else:
            return None
        return (str(org), item)
    except (ValueError, KeyError, TypeError, ValidationError):
        return None


class Spool:
    """The segment files of one spool directory, with their total size kept in memory."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_SPOOL_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None
        self._count = 0
        self._seq = 0

    # -- state ---------------------------------------------------------------------------------

    def _scan(self) -> None:
        """Learn the spool's size (once); remove half-written temporary files."""
        if self._size is not None:
            return
        size = count = 0
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.suffix == _TMP_SUFFIX:
                    path.unlink(missing_ok=True)
                elif path.suffix == SEGMENT_SUFFIX:
                    size += path.stat().st_size
                    count += 1
        self._size, self._count = size, count

    @property
    def has_data(self) -> bool:
        with self._lock:
            self._scan()
            return self._count > 0

    @property
    def size(self) -> int:
        with self._lock:
            self._scan()
            assert self._size is not None
            return self._size

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.suffix == SEGMENT_SUFFIX)

    # -- writing and reading -------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> bool:
        """Write `entries` as a new segment; False (nothing written) when they do not fit."""
        if not entries:
            return True
        data = ("\n".join(_encode(org, item) for org, item in entries) + "\n").encode("utf-8")
        with self._lock:
            self._scan()
            assert self._size is not None
            if self._size + len(data) > self.max_bytes:
                return False
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}"
            tmp = self.directory / (name + _TMP_SUFFIX)
            tmp.write_bytes(data)
            os.replace(tmp, self.directory / (name + SEGMENT_SUFFIX))
            self._size += len(data)
            self._count += 1
            return True

    def read(self, segment: Path) -> list[Entry]:
        """The entries of `segment`; unreadable lines are skipped (and logged)."""
        try:
            text = segment.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries: list[Entry] = []
        bad = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = _decode(line)
            if entry is None:
                bad += 1
            else:
                entries.append(entry)
        if bad:
            logger.warning("tracking spool: skipped %d unreadable line(s) in %s", bad, segment.name)
        return entries

    def remove(self, segment: Path) -> None:
        with self._lock:
            self._scan()
            assert self._size is not None
            try:
                size = segment.stat().st_size
                segment.unlink()
            except FileNotFoundError:
                return
            self._size = max(0, self._size - size)
            self._count = max(0, self._count - 1)

    def replace(self, segment: Path, entries: list[Entry]) -> None:
        """Keep only `entries` in `segment` (what is left after a partial delivery)."""
        if not entries:
            self.remove(segment)
            return
        data = ("\n".join(_encode(org, item) for org, item in entries) + "\n").encode("utf-8")
        with self._lock:
            self._scan()
            assert self._size is not None
            try:
                old = segment.stat().st_size
            except FileNotFoundError:
                old = 0
                self._count += 1
            tmp = segment.with_suffix(_TMP_SUFFIX)
            tmp.write_bytes(data)
            os.replace(tmp, segment)
            self._size = max(0, self._size - old) + len(data)
