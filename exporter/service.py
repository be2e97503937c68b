"""The exporter's I/O shell: recover the files, stream events from the engine, flush on a
timer and on stop.

Start-up: ``exporter.state.recover`` repairs the CSV files and picks ``since``; the event
stream is requested from there (0 on an empty directory: the whole history the engine holds).
If the engine answers with a snapshot because it no longer holds the events after ``since``,
rows for the events in between cannot be written: that is logged as an error
(``history_unavailable``) and exporting continues from the snapshot's seq. If the engine's seq
is below what the files already hold, it is another history (its data was reset): the files
are moved aside (``*.reset-N``), logged as an error (``engine_history_reset``), and the new
history is exported from its start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import structlog

from exchange.protocol.config import ExporterSection
from exchange.protocol.internal import EngineSnapshot
from exchange.protocol.messages import AccountUpdate, Fill, MarketStatus, News, RoundStarted
from exchange.service.event_stream import EventStream
from exchange.service.stats import LatencyHistogram
from exporter.state import HEADERS, recover
from exporter.writer import CsvSink


class Exporter:
    """Exports the engine's events at ``upstream`` into ``out_dir``; ``run(stop)``."""

    def __init__(self, *, upstream: str, out_dir: Path, settings: ExporterSection) -> None:
        self.upstream = upstream
        self.out_dir = out_dir
        self.settings = settings
        self._log = structlog.get_logger("exporter")
        self.sink: CsvSink | None = None
        self.stream: EventStream | None = None
        self.history_gaps = 0
        self.flush_latency = LatencyHistogram()
        """Seconds per flush that wrote something (append, fsync, state file)."""
        self._durable = asyncio.Condition()

    async def wait_durable(self, seq: int) -> None:
        """Wait until every row of every event up to ``seq`` is on disk (state file too)."""
        async with self._durable:
            await self._durable.wait_for(
                lambda: self.sink is not None and (self.sink.saved or 0) >= seq
            )

    async def run(self, stop: asyncio.Event) -> int:
        """Export until ``stop`` is set; then flush, close and return 0 (1 if the stream
        failed on a bug). Every ``flush_ms`` the rows so far become durable."""
        interval_ns = self.settings.performance_interval_ms * 1_000_000
        resume = recover(self.out_dir, self._log.warning, tail_ns=interval_ns)
        sink = self.sink = CsvSink(self.out_dir, resume, self.settings.performance_interval_ms)
        self._log.info(
            "exporter_started",
            out=str(self.out_dir),
            upstream=self.upstream,
            since=resume.since,
            state_seq=resume.state_seq,
            last_seqs={name: resume.files[name].last_seq for name in HEADERS},
        )
        stream = self.stream = EventStream(
            self.upstream,
            since=resume.since,
            on_snapshot=self._on_snapshot,
            on_events=self._on_events,
            name="exporter.upstream",
        )
        streaming = asyncio.create_task(stream.run(), name="exporter-upstream")
        stopping = asyncio.create_task(stop.wait())
        period = self.settings.flush_ms / 1000
        code = 0
        saved = sink.saved
        try:
            while True:
                done, _ = await asyncio.wait(
                    {streaming, stopping}, timeout=period, return_when=asyncio.FIRST_COMPLETED
                )
                started = time.perf_counter()
                if sink.flush() or sink.saved != saved:
                    self.flush_latency.observe(time.perf_counter() - started)
                    saved = sink.saved
                    async with self._durable:
                        self._durable.notify_all()
                if stopping in done:
                    break
                if streaming in done:
                    error = None if streaming.cancelled() else streaming.exception()
                    self._log.error("exporter_failed", error=repr(error))
                    code = 1
                    break
        finally:
            streaming.cancel()
            stopping.cancel()
            await asyncio.gather(streaming, stopping, return_exceptions=True)
            sink.close()
            self._log.info(
                "exporter_stopped",
                seq=sink.processed,
                rows={name: file.rows_written for name, file in sink.files.items()},
            )
        return code

    def _on_events(self, events: list[Any]) -> None:
        sink = self.sink
        assert sink is not None
        for event in events:
            kind = type(event)
            if kind is Fill:
                sink.add_fill(event)
            elif kind is AccountUpdate:
                sink.add_account_update(event)
            elif kind is News:
                sink.add_news(event)
            elif kind is RoundStarted:
                sink.add_round(event)
            elif kind is MarketStatus:
                sink.add_status(event)
        sink.advance(events[-1].seq)

    def _on_snapshot(self, snapshot: EngineSnapshot, requested: int | None) -> None:
        sink = self.sink
        stream = self.stream
        assert sink is not None and stream is not None
        held = max(requested or 0, sink.last_row_seq)
        if snapshot.seq < held:
            moved = sink.archive()
            self._log.error(
                "engine_history_reset",
                detail="the engine's seq is below the rows already exported: another history."
                " Old files moved aside; exporting the new history from its start",
                engine_seq=snapshot.seq,
                exported_seq=held,
                moved=[str(path) for path in moved],
            )
            stream.resubscribe(0)
            return
        if requested is not None and snapshot.seq > requested:
            self.history_gaps += 1
            self._log.error(
                "history_unavailable",
                detail="the engine no longer holds these events: their rows are NOT in the"
                " CSV files; continuing from the engine's snapshot",
                missing_from_seq=requested + 1,
                missing_to_seq=snapshot.seq,
            )
        sink.advance(snapshot.seq)
