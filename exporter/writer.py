"""Buffered, durable appends to the exporter's CSV files, each row exactly once.

``CsvSink`` turns events into rows in memory (``add_fill``, ``add_account_update``,
``add_news``, ``add_round``, ``advance``) and ``flush()`` makes them durable in this order:
append to each file of ``exporter.state.HEADERS`` in turn (trades.csv, performance.csv,
news.csv, rounds.csv), fsyncing each; then atomically record the seq processed in the state
file.
Why this order makes every row land exactly once across crashes: see ``exporter.state``.
No asyncio here; the service calls ``flush`` every ``flush_ms`` and on shutdown.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from exchange.protocol.messages import AccountUpdate, Fill, MarketStatus, News, RoundStarted
from exporter.csv_rows import (
    TS_NS_COLUMN,
    format_rows,
    header_line,
    news_row,
    performance_row,
    round_row,
    status_row,
    trade_row,
)
from exporter.state import (
    HEADERS,
    NEWS_FILE,
    PERFORMANCE_FILE,
    ROUNDS_FILE,
    STATE_FILE,
    STATUS_FILE,
    TRADES_FILE,
    FileTail,
    ResumePoint,
    write_state,
)


class PerformanceSampler:
    """Which account updates become performance.csv rows.

    ``interval_ns`` 0: every one. Else the first update of each account in each
    ``interval_ns`` bucket of event time (``ts // interval_ns``): deterministic, so a replay
    or a restarted exporter picks the same rows.
    """

    def __init__(self, interval_ns: int, tail_rows: Sequence[list[str]] = ()) -> None:
        self.interval_ns = interval_ns
        self._last_bucket: dict[str, int] = {}
        if interval_ns and tail_rows:
            for row in tail_rows:
                self._last_bucket[row[3]] = int(row[TS_NS_COLUMN]) // interval_ns

    def accept(self, account: str, ts: int) -> bool:
        if not self.interval_ns:
            return True
        bucket = ts // self.interval_ns
        if self._last_bucket.get(account) == bucket:
            return False
        self._last_bucket[account] = bucket
        return True


class CsvFile:
    """One CSV file open for appending, with the seq of its last row (buffered or written)."""

    def __init__(self, path: Path, header: tuple[str, ...], last_seq: int) -> None:
        self.path = path
        self.last_seq = last_seq
        self.pending: list[list[str]] = []
        self.rows_written = 0
        new = not path.exists() or path.stat().st_size == 0
        self.file: TextIO = path.open("a", encoding="utf-8", newline="")
        if new:
            self.file.write(header_line(header))
            self._sync()

    def add(self, seq: int, row: list[str]) -> None:
        """Queue ``row`` unless the file already has the row of event ``seq``."""
        if seq > self.last_seq:
            self.pending.append(row)
            self.last_seq = seq

    def write(self) -> int:
        """Append and fsync the queued rows; returns how many."""
        rows = self.pending
        if not rows:
            return 0
        self.pending = []
        self.file.write(format_rows(rows))
        self._sync()
        self.rows_written += len(rows)
        return len(rows)

    def _sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


class CsvSink:
    """Every CSV file (``HEADERS``) and the state file of one ``--out`` directory."""

    def __init__(
        self, out_dir: Path, resume: ResumePoint, performance_interval_ms: int = 0
    ) -> None:
        self.out_dir = out_dir
        self.interval_ns = performance_interval_ms * 1_000_000
        self._open(resume)

    def _open(self, resume: ResumePoint) -> None:
        self.files = {
            name: CsvFile(self.out_dir / name, header, resume.files[name].last_seq)
            for name, header in HEADERS.items()
        }
        """Every CSV file by name, in flush order."""
        self.trades = self.files[TRADES_FILE]
        self.performance = self.files[PERFORMANCE_FILE]
        self.news = self.files[NEWS_FILE]
        self.rounds = self.files[ROUNDS_FILE]
        self.status = self.files[STATUS_FILE]
        self.sampler = PerformanceSampler(
            self.interval_ns, resume.files[PERFORMANCE_FILE].tail_rows
        )
        self.processed = resume.since
        """Every event up to this seq has been turned into rows (queued or written)."""
        self.saved = resume.state_seq
        self.last_flush = time.monotonic()

    @property
    def last_row_seq(self) -> int:
        """The highest seq of any row written or queued."""
        return max(file.last_seq for file in self.files.values())

    def archive(self) -> list[Path]:
        """Move every file and the state aside (``<name>.reset-<n>``, one ``n`` for all) and
        start empty: for an engine whose history was reset (its seqs went back). Returns the
        archived paths."""
        self.flush()
        for file in self.files.values():
            file.close()
        n = 1
        while any((self.out_dir / f"{name}.reset-{n}").exists() for name in self.files):
            n += 1
        moved = []
        for name in self.files:
            target = self.out_dir / f"{name}.reset-{n}"
            (self.out_dir / name).rename(target)
            moved.append(target)
        (self.out_dir / STATE_FILE).unlink(missing_ok=True)
        empty = {name: FileTail(False, 0, []) for name in HEADERS}
        self._open(ResumePoint(0, empty, None))
        return moved

    def add_fill(self, fill: Fill) -> None:
        if fill.seq > self.trades.last_seq:
            self.trades.add(fill.seq, trade_row(fill))

    def add_account_update(self, update: AccountUpdate) -> None:
        seq = update.seq
        if seq is None or seq <= self.performance.last_seq:
            return  # already in the file (and already seen by the sampler)
        if self.sampler.accept(update.account, update.ts or 0):
            self.performance.add(seq, performance_row(update))

    def add_news(self, news: News) -> None:
        if news.seq > self.news.last_seq:
            self.news.add(news.seq, news_row(news))

    def add_round(self, event: RoundStarted) -> None:
        if event.seq > self.rounds.last_seq:
            self.rounds.add(event.seq, round_row(event))

    def add_status(self, event: MarketStatus) -> None:
        if event.seq > self.status.last_seq:
            self.status.add(event.seq, status_row(event))

    def advance(self, seq: int) -> None:
        """Every event up to ``seq`` has been given to ``add_*``."""
        self.processed = seq

    @property
    def pending_rows(self) -> int:
        return sum(len(file.pending) for file in self.files.values())

    def flush(self) -> int:
        """Write and fsync queued rows, then record the seq processed (atomically, after the
        data). Returns the number of rows written."""
        written = sum(file.write() for file in self.files.values())
        if self.processed != self.saved:
            write_state(self.out_dir, self.processed)
            self.saved = self.processed
        self.last_flush = time.monotonic()
        return written

    def close(self) -> None:
        """Flush and close every file."""
        self.flush()
        for file in self.files.values():
            file.close()
