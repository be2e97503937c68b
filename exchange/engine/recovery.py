"""Start-up from the data directory: latest valid snapshot + journal tail.

``recover`` checks every journal segment, truncates a torn or corrupt tail (and reports it),
restores the newest snapshot that is intact, restorable and not ahead of the valid journal
(unusable ones are set aside as ``*.corrupt``), and replays the records after it. Each record
must start at the seq the core has reached (``seq_before == last_seq``); otherwise the journal
does not belong to this state and recovery stops with ``RecoveryError`` rather than invent
history.

The core configuration the journal was written under is kept in ``core-config.msgpack``;
starting with a different one is refused (a journal only replays under its own rules).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from exchange.core import CoreConfig, Exchange
from exchange.engine.journal import (
    JournalReader,
    JournalRecord,
    fsync_directory,
    list_segments,
    read_segment,
)
from exchange.engine.snapshots import SnapshotFile, list_snapshots, read_snapshot
from exchange.protocol.messages import Error

CONFIG_FILE = "core-config.msgpack"


class RecoveryError(RuntimeError):
    """The data directory cannot be turned into a consistent state."""


@dataclass
class Recovery:
    core: Exchange
    next_index: int
    snapshot_index: int | None
    replayed: int
    seconds: float
    problems: list[str] = field(default_factory=list)
    """Human-readable reports of what was damaged and truncated."""


def check_config(directory: Path, config: CoreConfig) -> None:
    """Remember ``config`` for a new data directory, or refuse a different one."""
    path = directory / CONFIG_FILE
    encoded = msgspec.msgpack.encode(config)
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(encoded)
        os.replace(temporary, path)
        return
    if path.read_bytes() != encoded:
        raise RecoveryError(
            f"{directory} holds a journal written under a different core configuration "
            "(instruments, accounts or limits changed); use the original --config or a new "
            "--data-dir"
        )


def repair_journal(directory: Path) -> tuple[list[str], int]:
    """Truncate the journal at its first damaged record; returns what was done and the index
    after the last valid record (0 for an empty journal), from the same single scan.

    Segments after a damaged one cannot be applied (their history has a hole) and are renamed
    ``*.corrupt`` so nothing is silently lost.
    """
    problems = []
    journal_end = 0
    segments = list_segments(directory)
    for position, (_first, path) in enumerate(segments):
        records, scan = read_segment(path, decode=False)
        if records:
            journal_end = records[-1].index + 1
        if scan.problem is None:
            continue
        dropped = scan.total_bytes - scan.valid_bytes
        problems.append(
            f"{path.name}: {scan.problem}; kept {scan.records} records, truncated {dropped} bytes"
        )
        with path.open("r+b") as handle:
            handle.truncate(scan.valid_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        for _later_first, later in segments[position + 1 :]:
            later.rename(later.with_name(later.name + ".corrupt"))
            problems.append(f"{later.name}: follows a damaged segment, set aside as .corrupt")
        del records
        break
    return problems, journal_end


def _replay(
    core: Exchange,
    records: Iterator[JournalRecord],
    sink: Callable[[list[Any]], None] | None = None,
) -> tuple[int, int]:
    replayed = 0
    next_index = -1
    for record in records:
        if record.seq_before != core.last_seq:
            raise RecoveryError(
                f"journal record {record.index} starts after seq {record.seq_before} but the "
                f"state is at seq {core.last_seq}"
            )
        events = core.submit(record.account, record.command, record.ts)
        if sink is not None:
            sink(events)
        replayed += 1
        next_index = record.index + 1
    return replayed, next_index


def recover(
    directory: Path, config: CoreConfig, sink: Callable[[list[Any]], None] | None = None
) -> Recovery:
    """Rebuild the core from ``directory`` (created empty if missing).

    ``sink`` receives the events of every replayed journal record, in order (the engine keeps
    them so consumers can resume from before the restart).
    """
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    check_config(directory, config)
    problems, journal_end = repair_journal(directory)
    reader = JournalReader(directory)
    core: Exchange | None = None
    snapshot_index = None
    for info in list_snapshots(directory):
        # An unusable snapshot is set aside, not just skipped: the journal will grow again
        # from journal_end with new records, and a snapshot ahead of it now would later look
        # valid for that other history (and break the next start).
        if info.journal_index > journal_end:
            problems.append(
                f"{info.path.name}: ahead of the journal (index {journal_end}), "
                f"set aside as {_set_aside(info.path).name}"
            )
            continue
        snapshot = read_snapshot(info.path)
        restored = restore_snapshot(config, snapshot) if snapshot is not None else None
        if snapshot is None or restored is None:
            # Damaged, or intact but not restorable (another core version or configuration):
            # an older snapshot or the journal from the start rebuilds the state instead.
            why = "damaged" if snapshot is None else "not restorable by this core"
            aside = _set_aside(info.path)
            problems.append(f"{info.path.name}: {why}, set aside as {aside.name}")
            continue
        core = restored
        snapshot_index = snapshot.journal_index
        break
    if core is None:
        core = Exchange(config)
    replayed, next_index = _replay(core, reader.records(snapshot_index or 0), sink)
    if next_index < 0:
        next_index = snapshot_index or 0
    return Recovery(
        core=core,
        next_index=max(next_index, journal_end),
        snapshot_index=snapshot_index,
        replayed=replayed,
        seconds=time.perf_counter() - started,
        problems=problems,
    )


def restore_snapshot(config: CoreConfig, snapshot: SnapshotFile) -> Exchange | None:
    """The core ``snapshot`` holds, or None if this core cannot restore it (its content is
    intact but of another core version, or does not fit ``config``)."""
    try:
        return Exchange.restore(config, snapshot.core)
    except ValueError:
        return None


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` (out of every listing), durably; returns it."""
    aside = path.with_name(path.name + ".corrupt")
    path.rename(aside)
    fsync_directory(path.parent)
    return aside


def make_snapshot(core: Exchange, journal_index: int) -> SnapshotFile:
    """The snapshot of ``core`` after every journal record below ``journal_index``."""
    data = core.snapshot()
    return SnapshotFile(
        journal_index=journal_index,
        seq=core.last_seq,
        ts=core.last_ts,
        state_hash=hashlib.blake2b(data, digest_size=16).hexdigest(),
        core=data,
    )


def events_since(directory: Path, config: CoreConfig, since: int) -> Iterator[list[Any]]:
    """Regenerate the events with ``seq > since`` from the journal (for the event port).

    Starts from the newest snapshot at or before ``since`` (or the beginning) and replays;
    yields each command's events that are newer than ``since``. Raises RecoveryError if the
    history before ``since`` is no longer on disk.
    """
    reader = JournalReader(directory)
    core: Exchange | None = None
    start_index = 0
    if not directory.is_dir():
        raise RecoveryError(f"no journal in {directory}")
    for info in list_snapshots(directory):
        snapshot = read_snapshot(info.path)
        if snapshot is not None and snapshot.seq <= since:
            core = restore_snapshot(config, snapshot)
            if core is not None:
                start_index = snapshot.journal_index
                break
    if core is None:
        segments = list_segments(directory)
        if segments and segments[0][0] != 0:
            raise RecoveryError(f"history before seq {since} is no longer on disk")
        core = Exchange(config)
    for record in reader.records(start_index):
        events = core.submit(record.account, record.command, record.ts)
        if core.last_seq > since:
            yield [
                e
                for e in events
                if not isinstance(e, Error) and e.seq is not None and e.seq > since
            ]
