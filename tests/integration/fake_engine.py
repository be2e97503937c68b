"""A test-only event port (``exchange.protocol.internal``) serving a REAL matching core.

``FakeEngine`` owns an ``exchange.core.Exchange``; tests ``submit`` commands and every
sequenced event is streamed to consumers exactly as the engine's event port must: a consumer
sends ``StreamRequest(since)``; with ``since`` null, below ``history_floor`` (history the
engine "no longer holds") or beyond the last seq it gets an ``EngineSnapshot`` first; then JSON
arrays of events in gapless seq order. ``stop()``/``start()`` simulate an engine restart on
the same port with the same state.

``inject`` streams hand-built events (``market_status``, ``auction``: any status, reason and
auction figures at a chosen moment, without driving the core's own status machine) as the next
seqs; the core's later events are renumbered after them, and snapshots carry each instrument's
injected ``status``.

Also here: ``random_flow`` (seeded random order flow), ``operator_flow`` (news and rounds, as
an admin session would send them), ``status_flow`` (injected trading-status changes) and
``system_config`` (a small system).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from exchange.core import Exchange
from exchange.core.config import core_config
from exchange.protocol.codec import encode
from exchange.protocol.config import (
    AccountSpec,
    ExporterSection,
    InstrumentSpec,
    MarketDataSection,
    SystemConfig,
)
from exchange.protocol.internal import BookState, EngineHeartbeat, EngineSnapshot, StreamRequest
from exchange.protocol.messages import (
    AuctionInfo,
    BookDelta,
    CancelOrder,
    CreateAccount,
    ExecutionReport,
    MarketStatus,
    NewOrder,
    PublishNews,
    Side,
    StartRound,
    TimeInForce,
)

MONITOR_TOKEN = "test-monitor-token"
ACCOUNTS = ("a", "b", "c", "d")


def system_config(**marketdata: Any) -> SystemConfig:
    """Two symbols with different ticks, four rich accounts, one monitor token."""
    return SystemConfig(
        instruments=[
            InstrumentSpec(
                symbol="AAA",
                tick_size=0.01,
                reference_price=100.0,
                price_band=0.5,
                maker_fee=-0.0001,
                taker_fee=0.0003,
            ),
            InstrumentSpec(
                symbol="BBB",
                tick_size=0.5,
                reference_price=2000.0,
                price_band=0.5,
                taker_fee=0.0005,
            ),
        ],
        accounts=[AccountSpec(name=name, cash=10_000_000.0) for name in ACCOUNTS],
        marketdata=MarketDataSection(monitor_tokens=[MONITOR_TOKEN], **marketdata),
        exporter=ExporterSection(flush_ms=50),
    )


class _Consumer:
    def __init__(self, websocket: ServerConnection) -> None:
        self.websocket = websocket
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()


class FakeEngine:
    """The event port of a real core, for tests. ``url`` once started."""

    def __init__(self, config: SystemConfig | None = None, *, batch: int = 50) -> None:
        self.config = config or system_config()
        self.core = Exchange(core_config(self.config))
        self.events: list[Any] = []
        """Every sequenced event so far (``events[i].seq == i + 1``)."""
        self.encoded: list[bytes] = []
        self.history_floor = 0
        """Events with seq <= this are "no longer held": asking for them yields a snapshot."""
        self.last_book_seq: dict[str, int] = {}
        self.batch = batch
        self.port = 0
        self.snapshots_sent = 0
        self.requests: list[int | None] = []
        self._server: Server | None = None
        self._consumers: set[_Consumer] = set()
        self._requested = asyncio.Event()
        self._ts = 0
        self._offset = 0
        """Injected events so far: the core's seqs are shifted by this."""
        self.statuses: dict[str, Any] = {}
        """Each symbol's status as the injected ``market_status`` events left it."""

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def last_seq(self) -> int:
        return self.core.last_seq + self._offset

    async def start(self) -> int:
        """Listen (on the previous port after a stop, else a free one); returns the port."""
        self._server = await serve(
            self._serve, "127.0.0.1", self.port, compression=None, max_size=None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close the port and every consumer (as an engine that stops would)."""
        for consumer in self._consumers:
            consumer.queue.put_nowait(None)
        self._consumers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------------ commands

    def submit(self, account: str, command: Any) -> list[Any]:
        """Apply one command to the core and stream its sequenced events; returns them all."""
        self._ts = max(time.time_ns(), self._ts + 1)
        events: list[Any] = list(self.core.submit(account, command, self._ts))
        if self._offset:
            events = [
                msgspec.structs.replace(e, seq=e.seq + self._offset)
                if getattr(e, "seq", None) is not None
                else e
                for e in events
            ]
        return self._stream(events)

    def inject(self, *events: Any) -> list[Any]:
        """Stream hand-built sequenced events as the next seqs (their ``seq`` and ``ts`` are
        overwritten); a ``market_status`` also sets the symbol's status in later snapshots.
        Returns the events as streamed."""
        stamped = []
        for event in events:
            self._ts = max(time.time_ns(), self._ts + 1)
            self._offset += 1
            stamped.append(msgspec.structs.replace(event, seq=self.last_seq, ts=self._ts))
            if type(event) is MarketStatus:
                self.statuses[event.symbol] = event.status
        return self._stream(stamped)

    def _stream(self, events: list[Any]) -> list[Any]:
        sequenced = [e for e in events if getattr(e, "seq", None) is not None]
        if sequenced:
            assert sequenced[0].seq == len(self.events) + 1
            encoded = [encode(e) for e in sequenced]
            self.events.extend(sequenced)
            self.encoded.extend(encoded)
            for event in sequenced:
                if type(event) is BookDelta:
                    self.last_book_seq[event.symbol] = event.seq
            frame = b"[" + b",".join(encoded) + b"]"
            for consumer in self._consumers:
                consumer.queue.put_nowait(frame)
        return events

    async def wait_for_requests(self, count: int) -> None:
        """Wait until ``count`` stream requests have arrived in all."""
        while len(self.requests) < count:
            self._requested.clear()
            await self._requested.wait()

    async def ping_consumers(self) -> None:
        """Return once every consumer has received everything sent to it so far (its pong
        follows our earlier frames)."""
        for consumer in list(self._consumers):
            await consumer.queue.join()  # its sender task handed every frame to the socket
            with contextlib.suppress(ConnectionClosed):
                await (await consumer.websocket.ping())

    def heartbeat(self) -> None:
        """Send every consumer an ``EngineHeartbeat``."""
        frame = encode(EngineHeartbeat(ts=time.time_ns(), last_seq=self.last_seq))
        for consumer in self._consumers:
            consumer.queue.put_nowait(frame)

    def snapshot(self) -> EngineSnapshot:
        core = self.core
        ts = self._ts or time.time_ns()
        seq = self.last_seq
        books = []
        for symbol in core.symbols():
            book = core.book(symbol)
            assert book is not None
            to_price = book.instrument.to_price
            bids, asks = book.depth()
            books.append(
                BookState(
                    symbol,
                    [(to_price(p), q) for p, q in bids],
                    [(to_price(p), q) for p, q in asks],
                    to_price(book.last_trade) if book.last_trade else None,
                )
            )
        accounts = [account.view(ts, seq) for account in core.accounts()]
        instruments = [
            msgspec.structs.replace(info, status=self.statuses[info.symbol])
            if info.symbol in self.statuses
            else info
            for info in core.instruments()
        ]
        return EngineSnapshot(seq, ts, instruments, books, accounts)

    def depth(self, symbol: str, depth: int | None = None) -> tuple[list[Any], list[Any]]:
        """The core's book as display ``[[price, qty], ...]`` (what the relay must show)."""
        book = self.core.book(symbol)
        assert book is not None
        to_price = book.instrument.to_price
        bids, asks = book.depth(depth)
        return [[to_price(p), q] for p, q in bids], [[to_price(p), q] for p, q in asks]

    # ------------------------------------------------------------------ event port

    async def _serve(self, websocket: ServerConnection) -> None:
        try:
            raw = await websocket.recv(decode=False)
            since = msgspec.json.decode(raw, type=StreamRequest).since
        except (ConnectionClosed, msgspec.DecodeError):
            return
        self.requests.append(since)
        self._requested.set()
        consumer = _Consumer(websocket)
        last = self.last_seq
        if since is None or since < self.history_floor or since > last:
            self.snapshots_sent += 1
            consumer.queue.put_nowait(encode(self.snapshot()))
            since = last
        for start in range(since, last, self.batch):
            chunk = self.encoded[start : min(start + self.batch, last)]
            consumer.queue.put_nowait(b"[" + b",".join(chunk) + b"]")
        self._consumers.add(consumer)
        try:
            while (frame := await consumer.queue.get()) is not None:
                await websocket.send(frame, text=True)
                consumer.queue.task_done()
        except ConnectionClosed:
            pass
        finally:
            self._consumers.discard(consumer)


def random_flow(engine: FakeEngine, rng: random.Random, commands: int) -> None:
    """Submit ``commands`` random commands: resting limits, IOCs, markets, cancels."""
    live: list[tuple[str, int]] = []
    symbols = [
        (spec.symbol, spec.tick_size, spec.reference_price) for spec in engine.config.instruments
    ]
    for _ in range(commands):
        account = rng.choice(ACCOUNTS)
        roll = rng.random()
        if roll < 0.15 and live:
            owner, order_id = live.pop(rng.randrange(len(live)))
            engine.submit(owner, CancelOrder(order_id=order_id))
            continue
        symbol, tick, reference = rng.choice(symbols)
        side: Side = rng.choice(("buy", "sell"))
        qty = rng.randint(1, 20)
        if roll < 0.22:
            command = NewOrder(symbol=symbol, side=side, qty=qty, order_type="market")
        else:
            # Buys mostly below the reference, sells mostly above, with some overlap: trades.
            offset = rng.randint(-8, 25) * (-1 if side == "buy" else 1)
            price = round((round(reference / tick) + offset) * tick, 8)
            tif: TimeInForce = "ioc" if roll < 0.3 else "gtc"
            command = NewOrder(symbol=symbol, side=side, qty=qty, price=price, tif=tif)
        for event in engine.submit(account, command):
            if (
                type(event) is ExecutionReport
                and event.exec_type == "new"
                and event.tif == "gtc"
                and event.order_id is not None
            ):
                live.append((account, event.order_id))


def liquidation_scenario(engine: FakeEngine) -> None:
    """Account ``poor`` (2,000 cash) buys 100 AAA at 100; a trade at 82 liquidates it into
    b's bid at 80 (a ``liquidation`` event, fills flagged ``liquidation``, the insurance fund
    covering the loss)."""
    engine.submit("a", CreateAccount(account="poor", cash=2000.0))
    engine.submit("a", NewOrder(symbol="AAA", side="sell", qty=100, price=100.0))
    engine.submit("poor", NewOrder(symbol="AAA", side="buy", qty=100, price=100.0))
    engine.submit("b", NewOrder(symbol="AAA", side="buy", qty=200, price=80.0))
    engine.submit("d", NewOrder(symbol="AAA", side="buy", qty=1, price=82.0))
    engine.submit("c", NewOrder(symbol="AAA", side="sell", qty=1, price=82.0))


HEADLINES = (
    "Rates unchanged, guidance dovish",
    'CEO says "no comment", shares slide',
    "Earnings beat\nFull report to follow",
    "Exchange outage rumour denied",
)


def operator_flow(engine: FakeEngine, rng: random.Random, count: int) -> None:
    """Submit ``count`` operator commands: ``publish_news`` (random symbols, sentiment,
    sometimes a small ``shock`` and a ``body``), every fourth one a ``start_round`` instead
    (cash kept large, so that ``random_flow`` can go on trading)."""
    symbols = [spec.symbol for spec in engine.config.instruments]
    for i in range(count):
        if i % 4 == 3:
            engine.submit("", StartRound(name=f"round {rng.randint(1, 99)}", cash=10_000_000.0))
            continue
        named = rng.sample(symbols, rng.randint(0, len(symbols)))
        shock = rng.choice((None, None, round(rng.uniform(-0.01, 0.01), 4)))
        body = rng.choice((None, "Details, with commas.\nAnd a second line."))
        sentiment = round(rng.uniform(-1, 1), 3)
        headline = rng.choice(HEADLINES)
        engine.submit(
            "",
            PublishNews(
                headline=headline, symbols=named, sentiment=sentiment, shock=shock, body=body
            ),
        )


def status_flow(engine: FakeEngine, rng: random.Random, count: int) -> None:
    """Inject ``count`` trading-status changes shaped as the engine sends them (PROTOCOL
    §3.2): a random symbol halted (sometimes with ``until``), put in auction (with an
    ``auction`` message) or opened, with a random reason."""
    symbols = [spec.symbol for spec in engine.config.instruments]
    for _ in range(count):
        symbol = rng.choice(symbols)
        status = rng.choice(("halted", "auction", "open"))
        reason = rng.choice(("admin", "circuit_breaker", "schedule"))
        until = None if status == "open" or rng.random() < 0.5 else time.time_ns() + 10**10
        engine.inject(MarketStatus(symbol, status, reason, until, 0, 0))  # type: ignore[arg-type]
        if status == "auction":
            price = rng.choice((None, 100.0))
            qty = 0 if price is None else rng.randint(1, 50)
            engine.inject(AuctionInfo(symbol, price, qty, rng.randint(-9, 9), until, 0, 0))
