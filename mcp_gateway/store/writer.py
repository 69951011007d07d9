"""The group-commit writer both stores share: one connection, one thread, many jobs per transaction.

Every write is a job handed to the writer thread. The writer takes every job that is waiting (up to
`MAX_BATCH_JOBS`), runs them in one transaction and commits once: concurrent writers share one commit (one
fsync). A failing job rolls back alone: the batch then runs again with each job in its own SAVEPOINT. A
write's coroutine returns only after that COMMIT, so a caller that answers 2xx after `await writer.write(...)`
has answered for data that is durably stored.

Background jobs (`write(job, background=True)`: self-tracking's batches of captured calls, which nobody answers a
client for) do not hold up the others: a transaction holds either kind, foreground first, and background jobs wait
while foreground ones keep coming, for at most `MAX_BACKGROUND_DEFERRALS` foreground transactions. A lead booked
while a hundred tracked calls are being folded into the rollups commits without waiting for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import anyio.to_thread

from ..errors import ConflictError, StorageError
from .base import Connection, WriterStats

logger = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=Connection)

MAX_BATCH_JOBS: Final = 1000
"""Most write jobs the writer folds into one transaction."""

MAX_BACKGROUND_DEFERRALS: Final = 4
"""Most foreground transactions committed while background jobs wait, before those get their own."""

_STOP: Final = object()


@dataclass(frozen=True, slots=True)
class Driver(Generic[C]):
    """What the writer needs to know of one database: how to connect, how to begin a write transaction,
    and which driver exceptions mean what."""

    connect: Callable[[], C]
    begin: Callable[[C], None]
    """Start the write transaction (and take whatever lock orders writers across processes)."""
    error: type[Exception]
    """The driver's base exception: the database failed."""
    integrity_error: type[Exception]
    """A constraint refused the write: `ConflictError`."""
    before_commit: Callable[[C], None] = lambda conn: None
    """Run in each transaction after its jobs, before COMMIT: work the jobs left for the whole batch (the rollups
    of every event the batch stored, folded in one go)."""
    after_failure: Callable[[], None] = lambda: None
    """Run when a transaction failed: forget what its jobs left for `before_commit`."""
    after_batch: Callable[[C], None] = lambda conn: None
    """Run on the writer thread after each committed transaction (SQLite refreshes planner statistics)."""


@contextmanager
def transaction(conn: C, begin: Callable[[C], None]) -> Iterator[C]:
    """One transaction on `conn`: committed when the block ends, rolled back when it raises."""
    begin(conn)
    try:
        yield conn
    except BaseException:
        rollback(conn)
        raise
    conn.execute("COMMIT")


def rollback(conn: Connection) -> None:
    """Roll back whatever is open; a connection that cannot even do that is the caller's next problem."""
    try:
        conn.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - no transaction open, or the connection is gone
        logger.debug("rollback failed", exc_info=True)


_Job = tuple[Callable[[Any], Any], "concurrent.futures.Future[Any]"]
_Queued = tuple[Callable[[Any], Any], "concurrent.futures.Future[Any]", bool]
"""A job, its future and whether it is a background job."""
_Outcome = tuple["concurrent.futures.Future[Any]", Any, BaseException | None]


class _JobFailed(Exception):
    """A job raised in a batch run without savepoints: the batch runs again with them."""


class GroupCommitWriter(Generic[C]):
    """A writer thread owning one connection of `driver`; `write(job)` runs `job(conn)` in its next transaction."""

    def __init__(self, driver: Driver[C], conn: C, stats: WriterStats, *, name: str) -> None:
        self._driver = driver
        self._conn: C | None = conn
        self._stats = stats
        self._jobs: queue.SimpleQueue[_Queued | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def queue_depth(self) -> int:
        return self._jobs.qsize()

    async def write(self, job: Callable[[C], T], *, background: bool = False) -> T:
        """Run `job` in the writer's next transaction (a `background` job: in one holding no foreground job, see
        the module docstring); return once that transaction committed."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((job, future, background))
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        """Commit every job queued so far, then close the connection."""
        self._jobs.put(_STOP)
        await anyio.to_thread.run_sync(self._thread.join)

    def _loop(self) -> None:
        deferred: list[_Job] = []  # background jobs waiting for a transaction of their own
        deferrals = 0
        try:
            while True:
                taken, stop = self._take(block=not deferred)
                foreground = [(job, future) for job, future, background in taken if not background]
                deferred += [(job, future) for job, future, background in taken if background]
                if foreground:
                    self._commit_batch(foreground)
                    deferrals += 1
                if deferred and (not foreground or stop or deferrals > MAX_BACKGROUND_DEFERRALS):
                    for start in range(0, len(deferred), MAX_BATCH_JOBS):
                        self._commit_batch(deferred[start : start + MAX_BATCH_JOBS])
                    deferred, deferrals = [], 0
                if stop:
                    return
        finally:
            if self._conn is not None:
                self._conn.close()

    def _take(self, *, block: bool) -> tuple[list[_Queued], bool]:
        """The jobs waiting (up to `MAX_BATCH_JOBS`; waiting for one if `block`), and whether stopping was asked."""
        taken: list[_Queued] = []
        while len(taken) < MAX_BATCH_JOBS:
            try:
                item = self._jobs.get() if block and not taken else self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return taken, True
            taken.append(item)  # type: ignore[arg-type]
        return taken, False

    def _connection(self) -> C:
        """The writer's connection, opened again if a failure closed it."""
        if self._conn is None:
            self._conn = self._driver.connect()
        return self._conn

    def _commit_batch(self, batch: list[_Job]) -> None:
        # A job whose caller stopped waiting (its task was cancelled) is not run; the rest can no longer be
        # cancelled, so setting their results below cannot fail.
        batch = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        driver = self._driver
        started = time.perf_counter()
        try:
            conn = self._connection()
            try:
                outcomes = self._run(conn, batch, isolated=False)
            except _JobFailed:  # rolled back: run them again, each in a savepoint, so the one failing fails alone
                driver.after_failure()
                outcomes = self._run(conn, batch, isolated=True)
        except driver.error as exc:
            driver.after_failure()
            logger.exception("write transaction of %d jobs failed", len(batch))
            self._drop_if_broken()
            error = StorageError(f"write failed: {exc}")
            for _, future in batch:
                future.set_exception(error)
            self._stats.record_batch(
                len(batch), time.perf_counter() - started, failed=True, queue_depth=self._jobs.qsize()
            )
            return
        self._stats.record_batch(len(batch), time.perf_counter() - started, queue_depth=self._jobs.qsize())
        for future, result, failure in outcomes:
            if failure is None:
                future.set_result(result)
            elif isinstance(failure, driver.integrity_error):
                future.set_exception(ConflictError(str(failure)))
            elif isinstance(failure, driver.error):
                future.set_exception(StorageError(str(failure)))
            else:
                future.set_exception(failure)
        try:
            driver.after_batch(conn)
        except driver.error:
            logger.exception("the writer's after-batch work failed")

    def _run(self, conn: C, batch: list[_Job], *, isolated: bool) -> list[_Outcome]:
        """Run the jobs in one transaction and commit it; each job's result or exception.

        Most batches fail in no job, so they first run without savepoints (on PostgreSQL each savepoint is two
        round trips more per job). If a job raises, that transaction is rolled back (`_JobFailed`) and the batch
        runs again `isolated`: each job in its own savepoint, rolled back alone if it fails.
        """
        outcomes: list[_Outcome] = []
        with transaction(conn, self._driver.begin):
            for job, future in batch:
                if not isolated:
                    try:
                        outcomes.append((future, job(conn), None))
                    except Exception as exc:
                        raise _JobFailed from exc
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((future, None, exc))
                else:
                    outcomes.append((future, result, None))
                conn.execute("RELEASE job")
            self._driver.before_commit(conn)
        return outcomes

    def _drop_if_broken(self) -> None:
        """Close a connection that no longer answers, so the next batch opens a new one."""
        conn = self._conn
        if conn is None:
            return
        try:
            conn.execute("SELECT 1").fetchone()
        except self._driver.error:
            self._conn = None
            try:
                conn.close()
            except self._driver.error:
                pass
