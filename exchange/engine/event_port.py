"""The event port (``--event-port``): the sequenced stream of every engine event.

A consumer's first message is a ``StreamRequest``. With ``since`` = a seq the engine has
released, the consumer joins the live stream at once, but its writer does not run yet: what is
released from then on waits in its outbox. The events after ``since`` up to the seq it joined
at are sent first, in chunks (awaiting each send), from the in-memory history while it covers
them and else regenerated from the journal on disk; the catch-up has a fixed end, so neither
a fast-moving history nor a slow disk replay can outrun it. Then the writer starts. With
``since`` null, ahead of the engine, or older than both memory and disk hold, the consumer gets
an ``EngineSnapshot`` built at the next release, then the live stream. Either way no event is
missed or repeated.

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
from exchange.protocol.codec import encode, stream_request_decoder
from exchange.protocol.internal import (
    BookState,
    EngineHeartbeat,
    EngineSnapshot,
)
from exchange.protocol.messages import Error
from exchange.service.outbox import Outbox

log = structlog.get_logger("engine.event_port")

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
        leaderboard=core.leaderboard(),
        statuses=core.market_statuses(ts, seq),
    )
    return encode(snapshot)


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
            request = stream_request_decoder.decode(first)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            error = Error(code="invalid_message", text=str(exc), ref=None)
            await ws.send(encode(error), text=True)
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
        writer: asyncio.Task[None] | None = None
        try:
            await self._start(ws, subscriber, request.since)
            # Only now: live events released during the catch-up waited in the outbox.
            writer = asyncio.get_running_loop().create_task(outbox.run())
            async for _ in ws:  # later messages are ignored; this waits for the close
                pass
        finally:
            self._publisher.remove_subscriber(subscriber)
            outbox.close()
            if writer is not None:
                writer.cancel()
            log.info("subscriber_disconnected", subscriber=name)

    async def _start(self, ws: ServerConnection, subscriber: Subscriber, since: int | None) -> None:
        """Join live and send the events after ``since`` up to the join (memory, else disk);
        or, when they cannot be served, ask for a snapshot. The outbox's writer must not run
        yet (see the module doc)."""
        history = self._history
        publisher = self._publisher
        if since is None or not 0 <= since <= history.last_seq:
            publisher.request_snapshot(subscriber)
            return
        publisher.join_live(subscriber)
        until = subscriber.released_seq
        cursor = since
        if cursor < until:
            self._stats.history_replays += 1
        while cursor < until:
            if history.covers(cursor):
                chunk = history.after(cursor, min(REPLAY_CHUNK_EVENTS, until - cursor))
                cursor += len(chunk)
                await ws.send(b"[" + b",".join(chunk) + b"]", text=True)
                continue
            reached = await self._replay_from_disk(ws, cursor, until)
            if reached is None:  # neither memory nor disk holds them
                publisher.remove_subscriber(subscriber)
                subscriber.outbox.discard()
                publisher.request_snapshot(subscriber)
                return
            cursor = reached

    async def _replay_from_disk(self, ws: ServerConnection, since: int, until: int) -> int | None:
        """Send events after ``since`` (up to ``until``) that memory no longer holds,
        regenerated from the journal; returns the seq reached, None if the disk had none."""
        disk = self._disk
        if disk is None or not disk.can_replay(since):
            return None
        cursor = since
        async for batch in disk.replay_events(since, until):
            await ws.send(b"[" + b",".join(batch) + b"]", text=True)
            cursor += len(batch)
        return cursor if cursor > since else None

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
                frame = frames[seq] = encode(EngineHeartbeat(ts=ts, last_seq=seq))
            subscriber.outbox.put_frame(frame)
