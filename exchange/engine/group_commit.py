"""When the engine's output may leave the process, and when the journal is fsynced.

The publisher hands each loop iteration's output to a committer as a *release* callback; the
committer runs releases in the order it got them, each once the commands journaled before
it are as durable as the ``--fsync`` policy promises:

- ``none`` → ``ImmediateCommit``: the records are written to the OS, then released. Survives
  a crash of the engine process (``kill -9``), not a power cut; the OS writes back when it
  likes (and the journal is fsynced at snapshots and shutdown).
- ``batch`` (default) → ``PeriodicSync``: as ``none``, plus an fsync on a worker thread at
  most every ``interval`` (a few milliseconds) while there is something new: a power cut
  loses at most the last few milliseconds of acknowledged commands. Acknowledgements never
  wait for the disk.
- ``always`` → ``PipelinedCommit``: nothing is released before an fsync that covers it
  returned (group commit). The loop writes each group to the OS and goes on executing
  commands while one fsync runs on a worker thread; when it returns, every group written
  before it started is released and, if more were written meanwhile, the next fsync starts,
  covering all of them. So the loop never blocks on the disk, groups grow with the load, and
  an acknowledgement waits at most about two fsyncs. Survives a power cut.

An fsync that fails means durability can no longer be promised (the kernel may have dropped
the dirty pages): the committer stops and calls ``on_failure``; the engine exits and restarts
from what its journal really holds (PostgreSQL's policy).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections.abc import Callable
from typing import Protocol

Release = Callable[[], None]


class Journaled(Protocol):
    """What a committer needs from the sequencer (``exchange.engine.sequencer.Sequencer``)."""

    def write(self) -> None: ...

    def commit(self) -> None: ...

    def sync_job(self) -> Callable[[], None] | None: ...


class Committer(Protocol):
    def commit(self, release: Release) -> None:
        """Run ``release`` once what was journaled before this call is durable."""

    def drain(self) -> None:
        """Synchronously make everything durable and run every pending release."""

    def close(self) -> None:
        """``drain``, then free any resources (threads)."""


class ImmediateCommit:
    """Commit synchronously (``sequencer.commit``: write, and fsync if the sequencer syncs),
    then release."""

    def __init__(self, sequencer: Journaled) -> None:
        self._sequencer = sequencer

    def commit(self, release: Release) -> None:
        self._sequencer.commit()
        release()

    def drain(self) -> None:
        self._sequencer.commit()

    def close(self) -> None:
        self.drain()


class SyncWorker:
    """Runs one fsync at a time on a worker thread and reports its end on the event loop."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "journal-sync")
        self._future: concurrent.futures.Future[None] | None = None
        self.started = 0
        """fsyncs started."""

    @property
    def busy(self) -> bool:
        """Whether an fsync is running."""
        return self._future is not None

    def start(self, job: Callable[[], None], done: Callable[[BaseException | None], None]) -> None:
        """Run ``job`` (an fsync) on the thread; ``done(error or None)`` runs on the event loop
        afterwards, unless ``wait`` collected the result first. Needs a running loop."""
        loop = asyncio.get_running_loop()
        future = self._executor.submit(job)
        self._future = future
        self.started += 1

        def completed(finished: concurrent.futures.Future[None]) -> None:
            if finished is self._future:
                self._future = None
                done(finished.exception())

        future.add_done_callback(lambda finished: loop.call_soon_threadsafe(completed, finished))

    def wait(self) -> BaseException | None:
        """Block until the fsync in flight (if any) returned; its error, else None. Its
        ``done`` callback will not run."""
        future = self._future
        if future is None:
            return None
        self._future = None
        concurrent.futures.wait([future])
        return future.exception()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class _Background:
    """What both background committers share: the fsync worker and the failure state."""

    def __init__(self, sequencer: Journaled, on_failure: Callable[[BaseException], None]) -> None:
        self._sequencer = sequencer
        self._on_failure = on_failure
        self._worker = SyncWorker()
        self._closed = False
        self.failed = False

    @property
    def in_flight(self) -> bool:
        """Whether an fsync is running."""
        return self._worker.busy

    @property
    def syncs(self) -> int:
        """fsyncs started (each covers everything written before it)."""
        return self._worker.started


class PipelinedCommit(_Background):
    """``--fsync always``: group commit with one fsync at a time on a worker thread (see
    module doc).

    Must be used from the event loop's thread; ``commit`` needs a running loop.
    """

    def __init__(self, sequencer: Journaled, on_failure: Callable[[BaseException], None]) -> None:
        super().__init__(sequencer, on_failure)
        self._written: list[Release] = []
        """Groups written to the OS and not covered by the fsync in flight."""
        self._covered: list[Release] = []
        """Groups the fsync in flight covers."""

    def commit(self, release: Release) -> None:
        if self.failed:
            return
        if self._closed:  # shutting down: no thread any more, commit synchronously
            self._written.append(release)
            self.drain()
            return
        self._sequencer.write()
        self._written.append(release)
        if not self._worker.busy:
            self._start()

    def _start(self) -> None:
        job = self._sequencer.sync_job()
        groups, self._written = self._written, []
        if job is None:  # nothing new on disk since the last fsync (queries only)
            _run(groups)
            return
        self._covered = groups
        self._worker.start(job, self._synced)

    def _synced(self, error: BaseException | None) -> None:
        if self._finish(error) and self._written:
            self._start()

    def _finish(self, error: BaseException | None) -> bool:
        """Release the groups the last fsync covered, if it succeeded."""
        covered, self._covered = self._covered, []
        if error is not None:
            self._fail(error)
            return False
        _run(covered)
        return True

    def _fail(self, error: BaseException) -> None:
        self.failed = True
        self._written = []
        self._covered = []
        self._on_failure(error)

    def drain(self) -> None:
        if not self._finish(self._worker.wait()) or self.failed:
            return
        try:
            self._sequencer.commit()
        except OSError as error:
            self._fail(error)
            return
        groups, self._written = self._written, []
        _run(groups)

    def close(self) -> None:
        """``drain`` and stop the worker thread; later commits are synchronous."""
        self.drain()
        self._closed = True
        self._worker.shutdown()


def _run(releases: list[Release]) -> None:
    for release in releases:
        release()


class PeriodicSync(_Background):
    """``--fsync batch``: write and release at once; fsync on a worker thread at most every
    ``interval`` seconds while something new was written (see module doc).

    Must be used from the event loop's thread; ``commit`` needs a running loop.
    """

    def __init__(
        self,
        sequencer: Journaled,
        on_failure: Callable[[BaseException], None],
        interval: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(sequencer, on_failure)
        self._interval = interval
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._last_start = -math.inf

    def commit(self, release: Release) -> None:
        if self.failed:
            return
        self._sequencer.write()
        release()
        if self._closed:
            self._sync_now()
        elif not self._worker.busy and self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        """Start an fsync now, or once ``interval`` has passed since the last one started."""
        wait = self._last_start + self._interval - self._clock()
        if wait <= 0:
            self._start()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._start)

    def _start(self) -> None:
        self._timer = None
        if self.failed or self._closed:
            return
        job = self._sequencer.sync_job()
        if job is None:
            return  # nothing new since the last fsync
        self._last_start = self._clock()
        self._worker.start(job, self._synced)

    def _synced(self, error: BaseException | None) -> None:
        if error is not None:
            self._fail(error)
        else:
            self._schedule()  # anything written meanwhile (sync_job says), at most every interval

    def _fail(self, error: BaseException) -> None:
        self.failed = True
        self._on_failure(error)

    def _sync_now(self) -> None:
        try:
            self._sequencer.commit()
        except OSError as error:
            self._fail(error)

    def drain(self) -> None:
        """Wait for the fsync in flight, then write and fsync everything synchronously."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = self._worker.wait()
        if error is not None:
            self._fail(error)
        if not self.failed:
            self._sync_now()

    def close(self) -> None:
        """``drain`` and stop the worker thread; later commits sync synchronously."""
        self.drain()
        self._closed = True
        self._worker.shutdown()
