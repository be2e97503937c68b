"""The engine's data directory: recovery at start, the journal, snapshots, disk replay.

``Durability.open`` recovers the core (latest valid snapshot + journal tail, damage truncated
and reported) and returns the events the tail replay produced, so the event port can serve
consumers that were behind when the engine stopped. ``snapshot`` syncs the journal, writes the
state atomically and starts a new journal segment. ``replay_events`` regenerates older events
from disk, in a worker thread, for ``since`` values the in-memory history no longer covers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import structlog

from exchange.core import CoreConfig, Exchange
from exchange.engine.journal import JournalWriter, list_segments
from exchange.engine.recovery import RecoveryError, events_since, make_snapshot, recover
from exchange.engine.snapshots import list_snapshots, read_snapshot, write_snapshot
from exchange.protocol.codec import encode as _encode

log = structlog.get_logger()
REPLAY_BATCH_EVENTS = 2048


class Durability:
    """Owns the journal writer and the snapshots of one data directory."""

    def __init__(
        self, directory: Path, config: CoreConfig, writer: JournalWriter, keep_snapshots: int
    ) -> None:
        self.directory = directory
        self.config = config
        self.writer = writer
        self.keep_snapshots = max(1, keep_snapshots)
        self.commands_at_snapshot = writer.next_index
        self.snapshot_time = time.monotonic()

    @classmethod
    def open(
        cls, directory: Path, config: CoreConfig, keep_snapshots: int = 3
    ) -> tuple[Durability, Exchange, list[bytes], int]:
        """Recover; returns (durability, core, encoded events of the replayed tail, the seq
        before the first of them). Raises RecoveryError if the directory is inconsistent."""
        replayed: list[bytes] = []

        def keep(events: list[Any]) -> None:
            replayed.extend(_encode(e) for e in events if getattr(e, "seq", None) is not None)

        state = recover(directory, config, keep)
        for problem in state.problems:
            log.error("journal_damaged", problem=problem)
        first_seq = state.core.last_seq - len(replayed)
        log.info(
            "engine_recovered",
            snapshot_index=state.snapshot_index,
            replayed=state.replayed,
            last_seq=state.core.last_seq,
            seconds=round(state.seconds, 3),
        )
        writer = JournalWriter(directory, state.next_index)
        return cls(directory, config, writer, keep_snapshots), state.core, replayed, first_seq

    @property
    def dirty(self) -> bool:
        """Whether commands were journaled since the last snapshot."""
        return self.writer.next_index != self.commands_at_snapshot

    def snapshot(self, core: Exchange) -> None:
        """Sync the journal, write a snapshot of ``core`` atomically, start a new segment."""
        self.writer.sync()
        path = write_snapshot(self.directory, make_snapshot(core, self.writer.next_index))
        self.writer.rotate()
        self.commands_at_snapshot = self.writer.next_index
        self.snapshot_time = time.monotonic()
        for old in list_snapshots(self.directory)[self.keep_snapshots :]:
            old.path.unlink(missing_ok=True)
        log.info("snapshot_written", path=path.name, seq=core.last_seq)

    def close(self, core: Exchange) -> None:
        """Final snapshot (fast restart) and close the journal. Never raises."""
        try:
            if self.dirty:
                self.snapshot(core)
        except OSError:
            log.exception("snapshot_failed")
        self.writer.close()

    def can_replay(self, since: int) -> bool:
        """Whether the events after ``since`` can be regenerated from disk."""
        for info in list_snapshots(self.directory):
            snapshot = read_snapshot(info.path)
            if snapshot is not None and snapshot.seq <= since:
                return True
        segments = list_segments(self.directory)
        return bool(segments) and segments[0][0] == 0

    async def replay_events(self, since: int, until: int) -> AsyncIterator[list[bytes]]:
        """Encoded events with ``since < seq <= until``, in batches, computed in a thread."""
        self.writer.write()
        generator: Iterator[list[Any]] = events_since(self.directory, self.config, since)

        finished = False

        def next_batch() -> list[bytes] | None:
            nonlocal finished
            if finished:
                return None
            batch: list[bytes] = []
            for events in generator:
                for event in events:
                    if event.seq > until:
                        finished = True
                        return batch or None
                    batch.append(_encode(event))
                if len(batch) >= REPLAY_BATCH_EVENTS:
                    return batch
            finished = True
            return batch or None

        while True:
            try:
                batch = await asyncio.to_thread(next_batch)
            except RecoveryError:
                return
            if not batch:
                return
            yield batch
