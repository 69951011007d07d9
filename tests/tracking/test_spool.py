"""The on-disk spool: bounded, ordered, crash-tolerant, and kept across processes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from mcp_gateway_tracking import CaptureEvent, CaptureItem, CaptureSession, HttpSink, Spool

from .backend import FakeBackend

REPO_ROOT = Path(__file__).resolve().parents[2]


def entries(count: int, org: str = "org") -> list[tuple[str, CaptureItem]]:
    session_id = str(uuid.uuid4())
    out: list[tuple[str, CaptureItem]] = [(org, CaptureSession(session_id=session_id, client_config="c"))]
    for n in range(count - 1):
        event = CaptureEvent(
            session_id=session_id, primitive_type="tool", primitive_name=f"t{n}", latency=1, success=True
        )
        out.append((org, event))
    return out


def test_segments_come_back_oldest_first_with_their_orgs(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first, second = entries(2, "org-a"), entries(3, "org-b")
    assert spool.append(first) and spool.append(second)
    segments = spool.segments()
    assert [spool.read(segment) for segment in segments] == [first, second]
    assert spool.has_data and spool.size == sum(p.stat().st_size for p in segments)


def test_a_batch_that_does_not_fit_is_refused_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=600)
    assert spool.append(entries(2))
    assert not spool.append(entries(5))
    assert len(spool.segments()) == 1 and spool.size <= 600


def test_partly_delivered_segments_keep_only_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    items = entries(4)
    spool.append(items)
    [segment] = spool.segments()
    spool.replace(segment, items[2:])
    assert spool.read(segment) == items[2:]
    spool.replace(segment, [])
    assert not spool.has_data and spool.segments() == [] and spool.size == 0


def test_unreadable_lines_and_half_written_files_are_skipped(tmp_path: Path) -> None:
    items = entries(2)
    Spool(tmp_path).append(items)
    [segment] = Spool(tmp_path).segments()
    with segment.open("a") as file:
        file.write("{not json\n")
    (tmp_path / "123-1-000001.tmp").write_text("half")
    reopened = Spool(tmp_path)
    assert reopened.has_data
    assert not list(tmp_path.glob("*.tmp"))
    assert reopened.read(segment) == items


async def test_items_in_memory_when_the_process_exits_are_delivered_by_the_next_one(
    down_backend: FakeBackend, tmp_path: Path
) -> None:
    # A process tracks to a dead backend and exits before its worker ever ran: the items it held
    # are written to the spool at interpreter exit.
    script = (
        "import uuid, sys\n"
        "from mcp_gateway_tracking import HttpSink, CaptureSession\n"
        "sink = HttpSink(sys.argv[1], 'org-exit', spool_dir=sys.argv[2])\n"
        "for _ in range(3):\n"
        "    sink.submit(CaptureSession(session_id=str(uuid.uuid4()), client_config='exiting'))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, down_backend.url, str(tmp_path)], cwd=REPO_ROOT, check=True, timeout=30
    )
    assert Spool(tmp_path).has_data

    await down_backend.start()
    sink = HttpSink(down_backend.url, "org-other", spool_dir=tmp_path)
    sink.start()
    assert await sink.flush(5)
    await sink.aclose()
    assert [session.client_config for session in down_backend.sessions.values()] == ["exiting"] * 3
    assert {hit.org for hit in down_backend.hits} == {"org-exit"}
    assert not Spool(tmp_path).has_data
