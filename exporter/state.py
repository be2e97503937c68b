"""Where the exporter resumes: recovering the CSV files and the state file after any stop.

Exactly-once, across a crash at any instant (reasoning in docs/processes/exporter.md):

- Every row carries the ``seq`` of the event it comes from, and each file's rows are in
  increasing ``seq`` order. The seq of a file's last complete row (its *tail*) is the truth
  about that file: on start-up a partial or malformed last line (a crash mid-write) is cut off,
  and from then on a row is appended only when its seq is above the file's tail. So replaying
  events a file already holds never duplicates a row, whatever the state file says.
- The state file (``.exporter-state.json``: ``{"seq": P}``) says every row of every event up
  to ``P`` is on disk. It is replaced atomically (write, fsync, rename, fsync the directory)
  and only AFTER every CSV file was written and fsynced. So it may lag the files (a crash
  between the two writes), never lead them, and resuming the stream at ``since = P`` misses
  nothing: what follows ``P`` and is already in a file is skipped by that file's tail.
- Without a usable state file (first run, or a CSV file missing) the exporter resumes from the
  smallest tail, 0 for a missing or empty file: the whole history the engine holds. (So a
  directory written before a file was added to ``HEADERS`` gets that file filled from the
  history, while the other files skip what they hold.)

Every file in ``HEADERS`` follows these rules the same way: ``recover`` and the writer treat
them alike, by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from exporter.csv_rows import (
    NEWS_HEADER,
    PERFORMANCE_HEADER,
    ROUNDS_HEADER,
    SEQ_COLUMN,
    STATUS_HEADER,
    TRADES_HEADER,
    TS_NS_COLUMN,
    header_line,
    parse_line,
)

STATE_FILE = ".exporter-state.json"
TRADES_FILE = "trades.csv"
PERFORMANCE_FILE = "performance.csv"
NEWS_FILE = "news.csv"
ROUNDS_FILE = "rounds.csv"
STATUS_FILE = "status.csv"
HEADERS = {
    TRADES_FILE: TRADES_HEADER,
    PERFORMANCE_FILE: PERFORMANCE_HEADER,
    NEWS_FILE: NEWS_HEADER,
    ROUNDS_FILE: ROUNDS_HEADER,
    STATUS_FILE: STATUS_HEADER,
}
"""Every CSV file of an ``--out`` directory, in the order a flush writes them."""

Note = Callable[..., None]
"""How recovery reports what it repaired: ``note(event, **details)`` (a logger method)."""


class FileTail:
    """What recovery found in one CSV file."""

    __slots__ = ("existed", "last_seq", "tail_rows")

    def __init__(self, existed: bool, last_seq: int, tail_rows: list[list[str]]) -> None:
        self.existed = existed
        """The file held a header (a file from an earlier run)."""
        self.last_seq = last_seq
        """Seq of its last complete row; 0 when it has none."""
        self.tail_rows = tail_rows
        """Its last rows, oldest first (at least the last one, when there is one)."""


class ResumePoint:
    """Where to resume: ``since`` for the event stream, and each file's tail."""

    __slots__ = ("files", "since", "state_seq")

    def __init__(self, since: int, files: dict[str, FileTail], state_seq: int | None) -> None:
        self.since = since
        self.files = files
        self.state_seq = state_seq


def recover(out_dir: Path, note: Note, *, tail_ns: int = 0) -> ResumePoint:
    """Repair every CSV file (see module doc) and decide where to resume. ``tail_ns``: the
    tails returned hold at least every row of the last row's ``ts_ns // tail_ns`` bucket (for
    the performance sampler). Creates ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        name: recover_file(out_dir / name, header, note, tail_ns=tail_ns)
        for name, header in HEADERS.items()
    }
    state_seq = read_state(out_dir)
    if state_seq is not None and all(tail.existed for tail in files.values()):
        since = state_seq
    else:
        since = min(tail.last_seq for tail in files.values())
    return ResumePoint(since, files, state_seq)


def recover_file(path: Path, header: tuple[str, ...], note: Note, *, tail_ns: int = 0) -> FileTail:
    """Cut a partial or malformed tail off ``path``; a file with a foreign header is moved
    aside (``<name>.<n>.bad``). Returns what is left."""
    if not path.exists():
        return FileTail(False, 0, [])
    expected = header_line(header).encode()
    with path.open("r+b") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(0)
        first = file.read(len(expected))
        if size < len(expected) and expected.startswith(first):
            # Crashed while writing the header: start over.
            file.truncate(0)
            return FileTail(False, 0, [])
        if first != expected:
            aside = _aside(path)
            note("csv_header_mismatch", file=str(path), moved_to=str(aside))
            file.close()
            path.rename(aside)
            return FileTail(False, 0, [])
        start, complete, valid = _tail_block(file, len(expected), size, header, tail_ns)
        keep = start + sum(len(raw) + 1 for raw in complete[:valid])
        rows = [
            fields
            for raw in complete[:valid]
            if (fields := parse_line(raw.decode("utf-8", "replace"), len(header))) is not None
        ]
        if keep < size:
            note(
                "csv_tail_repaired",
                file=str(path),
                cut_bytes=size - keep,
                malformed_rows=len(complete) - valid,
            )
            file.truncate(keep)
    return FileTail(True, int(rows[-1][SEQ_COLUMN]) if rows else 0, rows)


def _tail_block(
    file: BinaryIO, floor: int, size: int, header: tuple[str, ...], tail_ns: int
) -> tuple[int, list[bytes], int]:
    """Read enough of the file's end to hold its last valid row (and, with ``tail_ns``, every
    row of that row's ``tail_ns`` bucket). Returns the offset of the first line read, the
    complete lines read, and how many of them to keep (trailing malformed ones are not)."""
    window = 1 << 16
    while True:
        start = max(floor, size - window)
        file.seek(start)
        data = file.read(size - start)
        if start > floor:
            cut = data.find(b"\n") + 1
            if cut == 0:
                window *= 4
                continue
            data = data[cut:]
            start += cut
        complete = data.split(b"\n")[:-1]  # what follows the last newline is a partial row
        valid = len(complete)
        while (
            valid
            and parse_line(complete[valid - 1].decode("utf-8", "replace"), len(header)) is None
        ):
            valid -= 1
        if start == floor or (valid and _whole_bucket(complete[:valid], tail_ns)):
            return start, complete, valid
        window *= 4


def _whole_bucket(lines: list[bytes], tail_ns: int) -> bool:
    """Whether ``lines`` begin before the ``tail_ns`` bucket of their last line."""
    if not tail_ns:
        return True
    try:
        first_ts = int(lines[0].split(b",")[TS_NS_COLUMN])
        last_ts = int(lines[-1].split(b",")[TS_NS_COLUMN])
    except (ValueError, IndexError):
        return True
    return first_ts // tail_ns < last_ts // tail_ns


def _aside(path: Path) -> Path:
    n = 1
    while (candidate := path.with_name(f"{path.name}.{n}.bad")).exists():
        n += 1
    return candidate


def read_state(out_dir: Path) -> int | None:
    """The seq in the state file, or None when absent or unreadable."""
    try:
        value = json.loads((out_dir / STATE_FILE).read_text())
        seq = value["seq"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return seq if isinstance(seq, int) and seq >= 0 else None


def write_state(out_dir: Path, seq: int) -> None:
    """Atomically record that every row of every event up to ``seq`` is durable. Call only
    after the CSV data has been written and fsynced."""
    path = out_dir / STATE_FILE
    temporary = out_dir / (STATE_FILE + ".tmp")
    with temporary.open("w") as file:
        file.write(json.dumps({"seq": seq}))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
