"""The event port (``--event-port``): the sequenced stream of every engine event.

A consumer's first message is a ``StreamRequest``. ``since`` = a seq the history still covers:
the events after it are replayed from memory in chunks (awaiting each send, so a long replay
never piles up in a buffer), then the consumer joins the live stream in the same step in which
the replay is found complete. Otherwise (``since`` null, too old, or ahead of the engine) it
gets an ``EngineSnapshot`` built at the next release, then the live stream. Either way no
event is missed or repeated.

Live frames are JSON arrays of events; snapshot and heartbeat frames are single objects. An
``EngineHeartbeat`` (``last_seq`` = the last event sent to that consumer) goes to every live
consumer every ``heartbeat_interval`` seconds. A consumer whose unsent data exceeds the bound
is dropped (close 1013); it reconnects with ``since``. An invalid first message gets an
``error`` (``invalid_message``) and close 1008. Later messages are ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import msgspec
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from exchange.core import Exchange
from exchange.engine.durability import Durability
from exchange.engine.history import EventHistory
from exchange.engine.metrics import EngineStats
from exchange.engine.publisher import Publisher, Subscriber
from exchange.protocol.internal import (
    BookState,
    EngineHeartbeat,
    EngineSnapshot,
    StreamRequest,
)
from exchange.protocol.messages import Error
from exchange.service.outbox import Outbox

log = structlog.get_logger("engine.event_port")

_encode = msgspec.json.Encoder().encode
_request_decoder = msgspec.json.Decoder(StreamRequest)

REPLAY_CHUNK_EVENTS = 2000
"""Events per frame while replaying history."""
MAX_FRAME_BYTES = 1 << 20
"""Live frames are split at about this size (a snapshot can be larger)."""


def build_snapshot(core: Exchange, ts: int) -> bytes:
    """The encoded ``EngineSnapshot`` of ``core`` as of its ``last_seq``: instruments, every
    book at full depth with its last trade, every account as an ``account_update``."""
    seq = core.last_seq
    books = []
    for symbol in core.symbols():
        book = core.book(symbol)
        if book is None:  # pragma: no cover - symbols() names existing books
            continue
        to_price = book.instrument.to_price
        bids, asks = book.depth(None)
        books.append(
            BookState(
                symbol=symbol,
                bids=[(to_price(price), qty) for price, qty in bids],
                asks=[(to_price(price), qty) for price, qty in asks],
                last_trade=to_price(book.last_trade) if book.last_trade else None,
            )
        )
    snapshot = EngineSnapshot(
        seq=seq,
        ts=ts,
        instruments=core.instruments(),
        books=books,
        accounts=[account.view(ts, seq) for account in core.accounts()],
    )
    return _encode(snapshot)


class EventPort:
    """Serves event-port connections; one per engine."""

    def __init__(
        self,
        publisher: Publisher,
        history: EventHistory,
        stats: EngineStats,
        *,
        buffer_limit: int,
        disk: Durability | None = None,
    ) -> None:
        self._publisher = publisher
        self._history = history
        self._disk = disk
        self._stats = stats
        self._buffer_limit = buffer_limit
        self._ids = itertools.count(1)
        self.connections = 0

    def queued_bytes(self) -> int:
        return sum(sub.outbox.queued_bytes for sub in self._publisher.subscribers)

    async def handle(self, ws: ServerConnection) -> None:
        """One consumer, from its ``StreamRequest`` until it disconnects."""
        self.connections += 1
        name = f"subscriber-{next(self._ids)}"
        try:
            await self._serve(ws, name)
        except ConnectionClosed:
            pass
        finally:
            self.connections -= 1

    async def _serve(self, ws: ServerConnection, name: str) -> None:
        first = await ws.recv(decode=False)
        try:
            request = _request_decoder.decode(first)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            error = Error(code="invalid_message", text=str(exc), ref=None)
            await ws.send(_encode(error), text=True)
            await ws.close(1008, "expected a stream request")
            return

        async def send(frame: bytes) -> None:
            await ws.send(frame, text=True)

        def overflow() -> None:
            self._publisher.remove_subscriber(subscriber)
            self._stats.slow_disconnects["event"] += 1
            log.warning("subscriber_too_slow", subscriber=name, limit=self._buffer_limit)
            asyncio.get_running_loop().create_task(ws.close(1013, "slow consumer"))

        outbox = Outbox(
            send,
            limit=self._buffer_limit,
            always_array=True,
            on_overflow=overflow,
            max_frame_bytes=MAX_FRAME_BYTES,
        )
        subscriber = Subscriber(name, outbox)
        log.info("subscriber_connected", subscriber=name, since=request.since)
        writer = asyncio.get_running_loop().create_task(outbox.run())
        try:
            await self._start(ws, subscriber, request.since)
            async for _ in ws:  # later messages are ignored; this waits for the close
                pass
        finally:
            self._publisher.remove_subscriber(subscriber)
            outbox.close()
            writer.cancel()
            log.info("subscriber_disconnected", subscriber=name)

    async def _start(self, ws: ServerConnection, subscriber: Subscriber, since: int | None) -> None:
        """Replay from history while it covers ``since``, then join live; else snapshot."""
        history = self._history
        if since is not None and since < history.first_seq - 1 and since >= 0:
            since = await self._replay_from_disk(ws, since)
        if since is None or not history.covers(since):
            self._publisher.request_snapshot(subscriber)
            return
        self._stats.history_replays += 1
        cursor = since
        while True:
            if not history.covers(cursor):  # the ring overtook a slow replay
                self._publisher.request_snapshot(subscriber)
                return
            if cursor >= history.last_seq:
                self._publisher.join_live(subscriber)
                return
            chunk = history.after(cursor, REPLAY_CHUNK_EVENTS)
            cursor += len(chunk)
            await ws.send(b"[" + b",".join(chunk) + b"]", text=True)

    async def _replay_from_disk(self, ws: ServerConnection, since: int) -> int | None:
        """Send the events after ``since`` that memory no longer holds, regenerated from the
        journal; returns the seq reached (None if the disk cannot serve ``since``)."""
        disk = self._disk
        if disk is None or not disk.can_replay(since):
            return None
        until = self._history.first_seq - 1
        self._stats.history_replays += 1
        cursor = since
        async for batch in disk.replay_events(since, until):
            await ws.send(b"[" + b",".join(batch) + b"]", text=True)
            cursor += len(batch)
        return cursor if cursor == until else None

    def heartbeat(self) -> None:
        """Queue a heartbeat to every live subscriber (call every second)."""
        subscribers = self._publisher.subscribers
        if not subscribers:
            return
        ts = time.time_ns()
        frames: dict[int, bytes] = {}
        for subscriber in subscribers:
            seq = subscriber.released_seq
            frame = frames.get(seq)
            if frame is None:
                frame = frames[seq] = _encode(EngineHeartbeat(ts=ts, last_seq=seq))
            subscriber.outbox.put_frame(frame)
