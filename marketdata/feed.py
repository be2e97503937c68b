"""The relay's logic: engine events in, public messages out, per channel (pure: no I/O).

``MarketFeed`` holds what the relay knows (books, last BBO, recent trades, last account
update of every account, instruments, the latest leaderboard, each symbol's trading status and
latest auction) and who is subscribed to what.
News and ``round_started`` pass through to their channels; a news ``shock`` updates the
instruments' ``reference_price`` (and ``instruments`` subscribers get the new list).
``market_status`` and ``auction`` go to the ``status`` channel; a ``market_status`` also sets
the instrument's ``status`` (``instruments`` subscribers get the new list). A ``status``
subscriber first gets one ``market_status`` for every symbol (open ones too: the whole picture
in one place), then the latest ``auction`` of every symbol in auction. A status the relay only
knows from an engine snapshot (it started, or resynced, after the change) is sent as the
snapshot's ``statuses`` give it (reason and ``until`` included), with the snapshot's
``seq``/``ts``. The
``rounds`` channel gets the latest ``leaderboard`` when subscribing, whenever the engine
publishes a new one, and every second from the shell (``leaderboard_tick``). Every method returns
``Outgoing`` triples ``(audience, frame, kind)`` in the order they must be written: each
public message is encoded once and goes to a set of connections (an audience is a live set,
shared by the messages of one channel or book group). The I/O shell collects them in a
``batching.Batch`` and writes them, one frame per connection, before it next calls
``handle`` or ``apply_snapshot``, which can change the audiences (``disconnect`` need not
wait: the connection gone simply misses what was still waiting).

Connections are opaque hashable objects here. Private engine events (execution reports,
cancel rejects, ``cancel_all_done``, errors) are dropped; fills become public ``trade``s
without account names. A ``book.S`` subscriber gets a ``book_snapshot`` first, then
``book_update``s whose ``prev_seq`` is the ``seq`` of the previous book message it got for
``S``: subscribers of one (symbol, depth) share one ``DepthView`` and so one chain (a
joiner's snapshot carries the view's ``seq``, which is the state of the top levels it shows).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable
from typing import Any, Generic, TypeVar

import msgspec

from exchange.protocol.codec import encode
from exchange.protocol.internal import EngineSnapshot
from exchange.protocol.messages import (
    AccountUpdate,
    AuctionInfo,
    Bbo,
    BookDelta,
    BookSnapshot,
    BookUpdate,
    Error,
    Fill,
    Heartbeat,
    InstrumentInfo,
    Instruments,
    Leaderboard,
    Liquidation,
    MarketStatus,
    News,
    Ping,
    Pong,
    RoundStarted,
    Subscribe,
    Subscribed,
    Trade,
    Unsubscribe,
    Unsubscribed,
)
from marketdata.books import DepthView, L2Book
from marketdata.channels import (
    ACCOUNTS,
    BBO,
    BOOK,
    INSTRUMENTS,
    LIQUIDATIONS,
    NEWS,
    ROUNDS,
    STATUS,
    TRADES,
    Channel,
    Session,
    unknown_names,
)

C = TypeVar("C")
Outgoing = tuple[Collection[Any], bytes, str]
"""(connections, encoded frame, channel kind for metrics)."""

DEFAULT_DEPTH = 10
MAX_DEPTH = 1000


class BookGroup(Generic[C]):
    """The subscribers of one (symbol, depth) and the view they share (None before sync)."""

    __slots__ = ("depth", "members", "view")

    def __init__(self, depth: int, view: DepthView | None) -> None:
        self.depth = depth
        self.view = view
        self.members: set[C] = set()


class MarketFeed(Generic[C]):
    """Public market state and subscriptions. Not thread-safe; call from one loop."""

    def __init__(
        self,
        instruments: list[InstrumentInfo],
        monitor_tokens: Iterable[str] = (),
        trade_history: int = 1000,
    ) -> None:
        self.instruments: list[InstrumentInfo] = list(instruments)
        self.symbols: list[str] = [i.symbol for i in instruments]
        self._tokens = frozenset(monitor_tokens)
        self._trade_history = max(1, trade_history)
        self.synced = False
        """True once an engine snapshot has been applied (before: no books, no BBO)."""
        self.last_seq: int | None = None
        self.books: dict[str, L2Book] = {}
        self.bbos: dict[str, Bbo] = {}
        self.trades: dict[str, deque[Trade]] = {
            s: deque(maxlen=self._trade_history) for s in self.symbols
        }
        self.accounts: dict[str, AccountUpdate] = {}
        self.leaderboard: Leaderboard | None = None
        self.statuses: dict[str, MarketStatus] = {}
        """The latest ``market_status`` of every symbol once synced (learned from the
        snapshot's instruments until an event says otherwise)."""
        self.auctions: dict[str, AuctionInfo] = {}
        """The latest ``auction`` of every symbol in auction."""
        self.sessions: dict[C, Session] = {}
        self.audiences: dict[Channel, set[C]] = {}
        self.groups: dict[str, dict[int, BookGroup[C]]] = {}
        self.resyncs = 0

    # ------------------------------------------------------------------ engine side

    def apply_snapshot(self, snapshot: EngineSnapshot) -> list[Outgoing]:
        """Rebuild everything from ``snapshot``; every book subscriber gets a fresh
        ``book_snapshot``, BBO subscribers the current BBO, ``accounts`` subscribers every
        account, ``instruments`` subscribers the list if it changed."""
        seq, ts = snapshot.seq, snapshot.ts
        instruments_changed = snapshot.instruments != self.instruments
        if self.synced:
            self.resyncs += 1
        self.instruments = list(snapshot.instruments)
        old_symbols = self.symbols
        self.symbols = [i.symbol for i in self.instruments]
        states = {state.symbol: state for state in snapshot.books}
        self.books = {}
        for symbol in self.symbols:
            state = states.get(symbol)
            if state is None:
                self.books[symbol] = L2Book(symbol, seq, ts)
            else:
                self.books[symbol] = L2Book.from_levels(symbol, state.bids, state.asks, seq, ts)
        self.bbos = {s: Bbo(s, *book.best(), ts, seq) for s, book in self.books.items()}
        self.trades = {
            s: self.trades.get(s) or deque(maxlen=self._trade_history) for s in self.symbols
        }
        self.accounts = {update.account: update for update in snapshot.accounts}
        if snapshot.leaderboard is not None:
            self.leaderboard = snapshot.leaderboard
        changed_statuses = self._learn_statuses(seq, ts, snapshot.statuses)
        self.last_seq = seq
        self.synced = True
        if self.symbols != old_symbols:
            for conn, session in self.sessions.items():
                added, removed = session.refresh(self.symbols)
                self._leave(conn, session, removed)
                for channel in added:
                    self._join(
                        conn, session, channel, session.depth_for(channel[1] or "", DEFAULT_DEPTH)
                    )
            for symbol in [s for s in self.groups if s not in self.books]:
                del self.groups[symbol]
        out: list[Outgoing] = []
        for symbol, groups in self.groups.items():
            book = self.books[symbol]
            for group in groups.values():
                group.view = DepthView(book, group.depth)
                if group.members:
                    out.append((group.members, self._snapshot_frame(book, group.view), BOOK))
        for symbol, bbo in self.bbos.items():
            audience = self.audiences.get((BBO, symbol))
            if audience:
                out.append((audience, encode(bbo), BBO))
        audience = self.audiences.get((INSTRUMENTS, None))
        if audience and instruments_changed:
            out.append((audience, encode(Instruments(self.instruments)), INSTRUMENTS))
        audience = self.audiences.get((ACCOUNTS, None))
        if audience:
            out.extend((audience, encode(update), ACCOUNTS) for update in self.accounts.values())
        audience = self.audiences.get((STATUS, None))
        if audience:
            out.extend((audience, encode(status), STATUS) for status in changed_statuses)
        return out

    def _learn_statuses(
        self, seq: int, ts: int, given: list[MarketStatus] | None = None
    ) -> list[MarketStatus]:
        """Align ``statuses`` and ``auctions`` with the instruments' ``status`` (after a
        snapshot: ``given`` are its statuses, with their reasons and ends); returns the
        statuses that changed."""
        changed: list[MarketStatus] = []
        statuses: dict[str, MarketStatus] = {}
        from_snapshot = {status.symbol: status for status in given or ()}
        for info in self.instruments:
            known = self.statuses.get(info.symbol)
            if known is not None and known.status == info.status:
                statuses[info.symbol] = known
                continue
            status = statuses[info.symbol] = from_snapshot.get(info.symbol) or _learned_status(
                info, seq, ts
            )
            changed.append(status)
        self.statuses = statuses
        self.auctions = {
            symbol: auction
            for symbol, auction in self.auctions.items()
            if symbol in statuses and statuses[symbol].status == "auction"
        }
        return changed

    def apply_events(self, events: list[Any]) -> list[Outgoing]:
        """Apply gapless engine events (after a snapshot); returns the public messages."""
        out: list[Outgoing] = []
        audiences = self.audiences
        for event in events:
            kind = type(event)
            if kind is BookDelta:
                self._book_delta(event, out)
            elif kind is Bbo:
                self.bbos[event.symbol] = event
                audience = audiences.get((BBO, event.symbol))
                if audience:
                    out.append((audience, encode(event), BBO))
            elif kind is Fill:
                trade = Trade(
                    event.symbol,
                    event.trade_id,
                    event.price,
                    event.qty,
                    event.aggressor,
                    event.ts,
                    event.seq,
                )
                history = self.trades.get(event.symbol)
                if history is not None:
                    history.append(trade)
                audience = audiences.get((TRADES, event.symbol))
                if audience:
                    out.append((audience, encode(trade), TRADES))
            elif kind is AccountUpdate:
                self.accounts[event.account] = event
                audience = audiences.get((ACCOUNTS, None))
                if audience:
                    out.append((audience, encode(event), ACCOUNTS))
            elif kind is Liquidation:
                audience = audiences.get((LIQUIDATIONS, None))
                if audience:
                    out.append((audience, encode(event), LIQUIDATIONS))
            elif kind is News:
                if event.reference_prices:
                    self._move_references(event.reference_prices, out)
                audience = audiences.get((NEWS, None))
                if audience:
                    out.append((audience, encode(event), NEWS))
            elif kind is MarketStatus:
                self._market_status(event, out)
            elif kind is AuctionInfo:
                self.auctions[event.symbol] = event
                audience = audiences.get((STATUS, None))
                if audience:
                    out.append((audience, encode(event), STATUS))
            elif kind is RoundStarted or kind is Leaderboard:
                if kind is Leaderboard:
                    self.leaderboard = event
                audience = audiences.get((ROUNDS, None))
                if audience:
                    out.append((audience, encode(event), ROUNDS))
        if events:
            self.last_seq = events[-1].seq
        return out

    def _market_status(self, event: MarketStatus, out: list[Outgoing]) -> None:
        if event.req_id is not None:  # the operator's request id is nobody else's business
            event = msgspec.structs.replace(event, req_id=None)
        symbol = event.symbol
        self.statuses[symbol] = event
        if event.status != "auction":
            self.auctions.pop(symbol, None)
        if any(info.symbol == symbol and info.status != event.status for info in self.instruments):
            self.instruments = [
                msgspec.structs.replace(info, status=event.status)
                if info.symbol == symbol
                else info
                for info in self.instruments
            ]
            audience = self.audiences.get((INSTRUMENTS, None))
            if audience:
                out.append((audience, encode(Instruments(self.instruments)), INSTRUMENTS))
        audience = self.audiences.get((STATUS, None))
        if audience:
            out.append((audience, encode(event), STATUS))

    def _move_references(self, prices: dict[str, float], out: list[Outgoing]) -> None:
        self.instruments = [
            msgspec.structs.replace(info, reference_price=prices[info.symbol])
            if info.symbol in prices
            else info
            for info in self.instruments
        ]
        audience = self.audiences.get((INSTRUMENTS, None))
        if audience:
            out.append((audience, encode(Instruments(self.instruments)), INSTRUMENTS))

    def leaderboard_tick(self, now: int) -> list[Outgoing]:
        """The latest leaderboard (stamped ``now``) for the ``rounds`` subscribers: the shell
        calls this every second (PROTOCOL §4)."""
        audience = self.audiences.get((ROUNDS, None))
        if not audience or self.leaderboard is None:
            return []
        repeat = msgspec.structs.replace(self.leaderboard, ts=now)
        return [(audience, encode(repeat), ROUNDS)]

    def _book_delta(self, delta: BookDelta, out: list[Outgoing]) -> None:
        book = self.books.get(delta.symbol)
        if book is None:
            return
        bid_changes, ask_changes = book.apply(delta.bids, delta.asks, delta.seq, delta.ts)
        groups = self.groups.get(delta.symbol)
        if not groups:
            return
        for group in groups.values():
            view = group.view
            if view is None:
                continue
            prev_seq = view.seq
            changes = view.advance(book, bid_changes, ask_changes)
            if changes is not None:
                update = BookUpdate(
                    delta.symbol, delta.seq, prev_seq, delta.ts, changes[0], changes[1]
                )
                out.append((group.members, encode(update), BOOK))

    # ------------------------------------------------------------------ client side

    def connect(self, conn: C) -> None:
        """Register a new connection (subscribed to nothing)."""
        self.sessions[conn] = Session()

    def disconnect(self, conn: C) -> None:
        """Forget a connection and all its subscriptions. Never raises."""
        session = self.sessions.pop(conn, None)
        if session is not None:
            self._leave(conn, session, list(session.channels))

    def handle(self, conn: C, message: Any, now: int) -> list[Outgoing]:
        """The replies to one decoded request (or decoder ``Error``) from ``conn``. A
        connection not (or no longer) registered with ``connect`` subscribes to nothing."""
        me = (conn,)
        match message:
            case Subscribe():
                return self._subscribe(conn, message)
            case Unsubscribe():
                return self._unsubscribe(conn, message)
            case Ping():
                return [(me, encode(Pong(ts=now, req_id=message.req_id)), "reply")]
            case Error():
                return [(me, encode(message), "error")]
        return [(me, encode(Error(code="invalid_message", text="unexpected message")), "error")]

    def _subscribe(self, conn: C, request: Subscribe) -> list[Outgoing]:
        me = (conn,)
        session = self.sessions.get(conn)
        if session is None:  # not connected (or cut off): subscribe to nothing
            return []
        if not 1 <= request.depth <= MAX_DEPTH:
            text = f"depth must be between 1 and {MAX_DEPTH}"
            return [(me, _error("invalid_message", text, request.req_id), "error")]
        unknown = unknown_names(request.channels, self.symbols)
        if unknown:
            text = f"unknown channel: {', '.join(unknown)}"
            return [(me, _error("unknown_channel", text, request.req_id), "error")]
        if ACCOUNTS in request.channels and request.token not in self._tokens:
            text = "the accounts channel needs a valid monitor token"
            return [(me, _error("forbidden", text, request.req_id), "error")]
        requested = session.subscribe(request.channels, self.symbols, request.depth)
        out: list[Outgoing] = [
            (me, encode(Subscribed(channels=request.channels, req_id=request.req_id)), "reply")
        ]
        for channel in requested:
            kind, symbol = channel
            if kind == BOOK and symbol is not None:
                group = self._join_book(conn, session, symbol, request.depth)
                book = self.books.get(symbol)
                if group.view is not None and book is not None:
                    out.append((me, self._snapshot_frame(book, group.view), BOOK))
                continue
            self.audiences.setdefault(channel, set()).add(conn)
            if kind == BBO:
                bbo = self.bbos.get(symbol or "")
                if bbo is not None:
                    out.append((me, encode(bbo), BBO))
            elif kind == INSTRUMENTS:
                out.append((me, encode(Instruments(self.instruments)), INSTRUMENTS))
            elif kind == ACCOUNTS:
                out.extend((me, encode(update), ACCOUNTS) for update in self.accounts.values())
            elif kind == ROUNDS and self.leaderboard is not None:
                out.append((me, encode(self.leaderboard), ROUNDS))
            elif kind == STATUS:
                out.extend((me, encode(status), STATUS) for status in self.statuses.values())
                out.extend((me, encode(auction), STATUS) for auction in self.auctions.values())
        return out

    def _unsubscribe(self, conn: C, request: Unsubscribe) -> list[Outgoing]:
        me = (conn,)
        unknown = unknown_names(request.channels, self.symbols)
        if unknown:
            text = f"unknown channel: {', '.join(unknown)}"
            return [(me, _error("unknown_channel", text, request.req_id), "error")]
        session = self.sessions.get(conn)
        if session is not None:
            self._leave(conn, session, session.unsubscribe(request.channels, self.symbols))
        reply = Unsubscribed(channels=request.channels, req_id=request.req_id)
        return [(me, encode(reply), "reply")]

    def _join(self, conn: C, session: Session, channel: Channel, depth: int) -> None:
        """Add ``conn`` to ``channel``'s audience (a book: to its group of ``depth``)."""
        kind, symbol = channel
        if kind == BOOK and symbol is not None:
            self._join_book(conn, session, symbol, depth)
        else:
            self.audiences.setdefault(channel, set()).add(conn)

    def _join_book(self, conn: C, session: Session, symbol: str, depth: int) -> BookGroup[C]:
        """Move ``conn`` into the group of (``symbol``, ``depth``), out of the group of its
        previous depth; returns the group."""
        old = session.depths.get(symbol)
        if old is not None and old != depth:
            self._leave_group(conn, symbol, old)
        session.depths[symbol] = depth
        groups = self.groups.setdefault(symbol, {})
        group = groups.get(depth)
        if group is None:
            book = self.books.get(symbol)
            group = groups[depth] = BookGroup(depth, DepthView(book, depth) if book else None)
        group.members.add(conn)
        return group

    def _leave(self, conn: C, session: Session, channels: Iterable[Channel]) -> None:
        for channel in channels:
            kind, symbol = channel
            if kind == BOOK and symbol is not None:
                depth = session.depths.pop(symbol, None)
                if depth is not None:
                    self._leave_group(conn, symbol, depth)
                continue
            audience = self.audiences.get(channel)
            if audience is not None:
                audience.discard(conn)
                if not audience:
                    del self.audiences[channel]

    def _leave_group(self, conn: C, symbol: str, depth: int) -> None:
        groups = self.groups.get(symbol)
        group = groups.get(depth) if groups else None
        if groups is None or group is None:
            return
        group.members.discard(conn)
        if not group.members:
            del groups[depth]
            if not groups:
                del self.groups[symbol]

    # ------------------------------------------------------------------ views for HTTP, heartbeats

    def heartbeat(self, now: int) -> bytes:
        """The ``heartbeat`` frame: the latest book ``seq`` of every symbol."""
        return encode(Heartbeat(ts=now, seqs={s: book.seq for s, book in self.books.items()}))

    def book_snapshot(self, symbol: str, depth: int | None) -> BookSnapshot | None:
        """The full-depth book of ``symbol`` cut to ``depth`` (None: unknown or not synced)."""
        book = self.books.get(symbol)
        if book is None:
            return None
        bids, asks = book.top(depth)
        return BookSnapshot(symbol, book.seq, book.ts, bids, asks)

    def recent_trades(self, symbol: str, limit: int) -> list[Trade] | None:
        """Up to ``limit`` most recent trades of ``symbol``, oldest first (None: unknown)."""
        history = self.trades.get(symbol)
        if history is None:
            return None
        if limit >= len(history):
            return list(history)
        return list(history)[len(history) - limit :]

    def subscriber_counts(self) -> dict[str, int]:
        """Subscriptions per channel kind (a connection counts once per concrete channel)."""
        counts = dict.fromkeys(
            (BOOK, TRADES, BBO, LIQUIDATIONS, ACCOUNTS, INSTRUMENTS, STATUS, NEWS, ROUNDS), 0
        )
        for (kind, _symbol), audience in self.audiences.items():
            counts[kind] = counts.get(kind, 0) + len(audience)
        for groups in self.groups.values():
            for group in groups.values():
                counts[BOOK] += len(group.members)
        return counts

    def _snapshot_frame(self, book: L2Book, view: DepthView) -> bytes:
        bids, asks = book.top(view.depth)
        return encode(BookSnapshot(book.symbol, view.seq, view.ts, bids, asks))


def _learned_status(info: InstrumentInfo, seq: int, ts: int) -> MarketStatus:
    """The ``market_status`` of an instrument whose status is known only from the instruments
    (an engine snapshot): reason ``admin``, no ``until``."""
    return MarketStatus(info.symbol, info.status, "admin", None, ts, seq)


def _error(code: str, text: str, req_id: str | int | None) -> bytes:
    """An ``error`` answering a request with ``req_id`` (relay requests carry no
    client_order_id, so ``ref`` is the req_id too)."""
    return encode(Error(code=code, text=text, ref=req_id, req_id=req_id))  # type: ignore[arg-type]
