"""The one place that changes exchange state: every state-changing command passes through
``Sequencer.submit``, which stamps it with the input time and hands it to the core.

Time: ``ts`` is ``time.time_ns()`` made monotonic non-decreasing (a clock step backwards
repeats the last ts), so events never go back in time even if the wall clock does.

Durability: the sequencer owns the optional journal. ``submit`` appends the command (with the
core's ``last_seq`` before it and its ts, the shape
``exchange.engine.journal.JournalWriter.append`` takes) before applying it; ``commit`` makes
everything appended so far durable, and ``write`` + ``sync_job`` do the same in two steps so
that the fsync can run on another thread (``exchange.engine.group_commit``). The publisher
releases the replies and events of a loop iteration only once their commands are durable, so
nothing is acknowledged that a restart could lose (group commit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from exchange.core import Exchange


class Journal(Protocol):
    """What the sequencer needs from a journal (``exchange.engine.journal.JournalWriter`` fits)."""

    def append(self, seq_before: int, ts: int, account: str, command: Any) -> int: ...

    def write(self) -> None: ...

    def sync(self) -> None: ...

    def sync_job(self) -> Callable[[], None] | None: ...


class Sequencer:
    """Owns the core for writing. Read-only queries may use ``core`` directly."""

    __slots__ = ("_clock", "_journal", "_last_ts", "_sync", "commands", "core")

    def __init__(
        self,
        core: Exchange,
        *,
        journal: Journal | None = None,
        sync: bool = True,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``sync``: ``commit`` and ``sync_job`` fsync; otherwise the journal is only written
        (``--fsync none``). When to commit is the committer's business
        (``exchange.engine.group_commit``)."""
        self.core = core
        self._journal = journal
        self._sync = sync
        self._clock = clock
        self._last_ts = core.last_ts
        self.commands = 0

    @property
    def last_ts(self) -> int:
        """The ts of the last command submitted (0 before any)."""
        return self._last_ts

    def peek(self) -> int:
        """What ``now`` would hand out, without handing it out (nothing is stamped)."""
        return max(self._clock(), self._last_ts)

    def now(self) -> int:
        """The next input time: the clock, but never earlier than the last one handed out."""
        ts = self._clock()
        if ts < self._last_ts:
            ts = self._last_ts
        self._last_ts = ts
        return ts

    def submit(self, account: str, command: Any) -> list[Any]:
        """Journal ``command`` for ``account``, apply it, return the events it caused.

        Never raises for a malformed command (the core answers with an ``Error`` event).
        """
        ts = self.now()
        core = self.core
        journal = self._journal
        if journal is not None:
            journal.append(core.last_seq, ts, account, command)
        self.commands += 1
        return core.submit(account, command, ts)

    def write(self) -> None:
        """Hand every command submitted so far to the OS (no fsync)."""
        if self._journal is not None:
            self._journal.write()

    def sync_job(self) -> Callable[[], None] | None:
        """An fsync of everything written, to run on a worker thread; None when there is no
        journal, the policy does not sync, or nothing was written since the last one."""
        journal = self._journal
        if journal is None or not self._sync:
            return None
        return journal.sync_job()

    def commit(self) -> None:
        """Make every command submitted so far durable. Call before sending their results."""
        journal = self._journal
        if journal is not None:
            journal.write()
            if self._sync:
                journal.sync()
