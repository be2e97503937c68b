"""The monitor's view state and the pure reducer that builds it from feed messages.

``reduce(state, event)`` applies one relay message (``exchange.protocol.messages``) or one
UI/connection event (below) to ``state`` and returns it. It does no I/O, reads no clock and
never raises on a well-typed message, so the same events always give the same state: the
tests feed it messages directly, without a terminal or a socket. (It updates ``state`` in
place, for speed on busy feeds; the app renders it on a timer, never per message.)

Books are rebuilt from ``book_snapshot`` + ``book_update``; an update whose ``prev_seq``
is not the book's ``seq`` marks the symbol stale and puts it in ``state.resync`` for the
feed to resubscribe.

News (``news`` channel) is kept newest first, at most ``NEWS_LOG`` items, each once (by
``seq``). The ``rounds`` channel gives ``round_started`` and a ``leaderboard`` every second
(the relay repeats its latest one, restamped): the newest round seen since connecting is
``state.round``, and a leaderboard of an earlier round (a repeat that was already on its way
when the round started) never replaces the current one.

Trading status (``status`` channel): the latest ``market_status`` of each symbol (a newer
``seq`` replaces it; after a reconnect the relay's first ones count whatever their ``seq``,
as the relay may hold another history) and the latest ``auction`` of each symbol in auction
(forgotten when it leaves auction). ``symbol_status`` falls back on the ``instruments``'
``status`` (a relay without the ``status`` channel).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from exchange.protocol.messages import (
    AccountUpdate,
    AuctionInfo,
    BookSnapshot,
    BookUpdate,
    Error,
    Heartbeat,
    InstrumentInfo,
    Instruments,
    Leaderboard,
    Liquidation,
    MarketStatus,
    News,
    RoundStarted,
    Subscribed,
    Trade,
)

Level = tuple[float, int]
Status = Literal["connecting", "connected", "disconnected", "reconnecting"]
Panel = Literal["accounts", "liquidations", "trades", "news", "leaderboard"]
PANELS: tuple[Panel, ...] = ("accounts", "liquidations", "trades", "news", "leaderboard")

TAPE_LENGTH = 200
PRICE_HISTORY = 240
LIQUIDATION_LOG = 100
NEWS_LOG = 100
ROUNDS_KEPT = 16


# --------------------------------------------------------------------------- UI events


@dataclass(frozen=True)
class Connecting:
    """A connection attempt starts (``attempt`` 0 is the first, later ones are retries)."""

    url: str
    attempt: int = 0


@dataclass(frozen=True)
class Connected:
    url: str


@dataclass(frozen=True)
class Disconnected:
    reason: str


@dataclass(frozen=True)
class SelectSymbol:
    """Move the symbol selection by ``step`` (wraps), or jump to ``symbol``."""

    step: int = 0
    symbol: str | None = None


@dataclass(frozen=True)
class SelectPanel:
    panel: Panel


# --------------------------------------------------------------------------- state


@dataclass
class BookView:
    """One symbol's L2 book as the feed describes it."""

    bids: dict[float, int] = field(default_factory=dict)
    asks: dict[float, int] = field(default_factory=dict)
    seq: int = 0
    synced: bool = False

    def levels(
        self, depth: int | None = None
    ) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        """(bids best first, asks best first), at most ``depth`` each."""
        bids = sorted(self.bids.items(), key=lambda lv: -lv[0])[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks


@dataclass
class MonitorState:
    """Everything the screen shows. Build it with ``reduce``; read it anywhere."""

    depth: int = 20
    status: Status = "connecting"
    url: str = ""
    attempts: int = 0
    disconnects: int = 0
    """How many times the feed dropped since the monitor started."""
    last_error: str | None = None
    symbols: list[str] = field(default_factory=list)
    selected: str | None = None
    panel: Panel = "accounts"
    instruments: dict[str, InstrumentInfo] = field(default_factory=dict)
    books: dict[str, BookView] = field(default_factory=dict)
    tape: deque[Trade] = field(default_factory=lambda: deque(maxlen=TAPE_LENGTH))
    prices: dict[str, deque[float]] = field(default_factory=dict)
    volumes: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, AccountUpdate] = field(default_factory=dict)
    accounts_access: Literal["unknown", "granted", "forbidden", "no_token"] = "unknown"
    liquidations: deque[Liquidation] = field(default_factory=lambda: deque(maxlen=LIQUIDATION_LOG))
    news: deque[News] = field(default_factory=lambda: deque(maxlen=NEWS_LOG))
    """Newest first."""
    round: int = 0
    """The newest round seen (``round_started`` or a leaderboard) since connecting."""
    rounds: dict[int, RoundStarted] = field(default_factory=dict)
    """The ``round_started`` of the latest rounds seen (names and cash), by round number."""
    leaderboard: Leaderboard | None = None
    market_status: dict[str, MarketStatus] = field(default_factory=dict)
    """The latest ``market_status`` of each symbol (``status`` channel)."""
    auctions: dict[str, AuctionInfo] = field(default_factory=dict)
    """The latest ``auction`` of each symbol in auction."""
    status_stale: set[str] = field(default_factory=set)
    """Symbols whose ``market_status`` predates the last disconnect: the next one replaces
    it whatever its ``seq``."""
    resync: set[str] = field(default_factory=set)
    messages: int = 0
    last_ts: int = 0
    last_seq: int = 0

    def book(self, symbol: str | None = None) -> BookView:
        name = symbol or self.selected or ""
        return self.books.setdefault(name, BookView())

    def symbol_status(self, symbol: str | None = None) -> str:
        """``open``, ``halted`` or ``auction`` of ``symbol`` (default: the selected one)."""
        name = symbol or self.selected or ""
        known = self.market_status.get(name)
        if known is not None:
            return known.status
        info = self.instruments.get(name)
        return info.status if info is not None else "open"


def reduce(state: MonitorState, event: Any) -> MonitorState:
    """Apply one feed message or UI event to ``state``; returns ``state``."""
    match event:
        case BookUpdate():
            state.messages += 1
            _book_update(state, event)
        case BookSnapshot():
            state.messages += 1
            book = state.book(event.symbol)
            book.bids = {p: q for p, q in event.bids if q > 0}
            book.asks = {p: q for p, q in event.asks if q > 0}
            book.seq, book.synced = event.seq, True
            state.resync.discard(event.symbol)
            _add_symbol(state, event.symbol)
            _seen(state, event.ts, event.seq)
        case Trade():
            state.messages += 1
            state.tape.appendleft(event)
            state.prices.setdefault(event.symbol, deque(maxlen=PRICE_HISTORY)).append(event.price)
            state.volumes[event.symbol] = state.volumes.get(event.symbol, 0) + event.qty
            _add_symbol(state, event.symbol)
            _seen(state, event.ts, event.seq)
        case AccountUpdate():
            state.messages += 1
            current = state.accounts.get(event.account)
            if current is None or (event.seq or 0) >= (current.seq or 0):
                state.accounts[event.account] = event
            state.accounts_access = "granted"
            _seen(state, event.ts or 0, event.seq or 0)
        case Liquidation():
            state.messages += 1
            state.liquidations.appendleft(event)
            _seen(state, event.ts, event.seq)
        case News():
            state.messages += 1
            if all(item.seq != event.seq for item in state.news):
                state.news.appendleft(event)
            _seen(state, event.ts, event.seq)
        case RoundStarted():
            state.messages += 1
            state.rounds[event.round] = event
            if len(state.rounds) > ROUNDS_KEPT:
                del state.rounds[min(state.rounds)]
            state.round = max(state.round, event.round)
            _seen(state, event.ts, event.seq)
        case Leaderboard():
            state.messages += 1
            if event.round >= state.round:
                state.round = event.round
                state.leaderboard = event
            _seen(state, event.ts, event.seq)
        case MarketStatus():
            state.messages += 1
            _market_status(state, event)
            _seen(state, event.ts, event.seq)
        case AuctionInfo():
            state.messages += 1
            known = state.auctions.get(event.symbol)
            if known is None or event.seq >= known.seq or event.symbol in state.status_stale:
                state.auctions[event.symbol] = event
            _seen(state, event.ts, event.seq)
        case Heartbeat():
            state.last_ts = max(state.last_ts, event.ts)
        case Instruments():
            for info in event.instruments:
                state.instruments[info.symbol] = info
                _add_symbol(state, info.symbol)
        case Subscribed():
            if "accounts" in event.channels:
                state.accounts_access = "granted"
        case Error():
            state.last_error = f"{event.code}: {event.text}"
            if event.code == "forbidden":
                state.accounts_access = "forbidden"
        case Connecting():
            state.url = event.url
            state.attempts = event.attempt
            state.status = "connecting" if event.attempt == 0 else "reconnecting"
        case Connected():
            state.status, state.url, state.last_error = "connected", event.url, None
        case Disconnected():
            state.status, state.last_error = "disconnected", event.reason
            state.disconnects += 1
            for book in state.books.values():
                book.synced = False
            state.resync.clear()
            # The relay may have restarted on another history: the next leaderboard counts,
            # whatever its round (the one shown stays until it comes). Same for statuses.
            state.round = 0
            state.status_stale = set(state.market_status)
        case SelectSymbol():
            _select(state, event)
        case SelectPanel():
            state.panel = event.panel
    return state


def _book_update(state: MonitorState, event: BookUpdate) -> None:
    book = state.book(event.symbol)
    if not book.synced:
        return
    if event.prev_seq != book.seq:
        if event.seq > book.seq:
            book.synced = False
            state.resync.add(event.symbol)
        return
    for side, changes in ((book.bids, event.bids), (book.asks, event.asks)):
        for price, qty in changes:
            if qty > 0:
                side[price] = qty
            else:
                side.pop(price, None)
    if len(book.bids) > state.depth or len(book.asks) > state.depth:
        bids, asks = book.levels(state.depth)
        book.bids, book.asks = dict(bids), dict(asks)
    book.seq = event.seq
    _seen(state, event.ts, event.seq)


def _market_status(state: MonitorState, event: MarketStatus) -> None:
    symbol = event.symbol
    known = state.market_status.get(symbol)
    if known is not None and event.seq < known.seq and symbol not in state.status_stale:
        return
    state.status_stale.discard(symbol)
    state.market_status[symbol] = event
    if event.status != "auction":
        state.auctions.pop(symbol, None)
    _add_symbol(state, symbol)


def _seen(state: MonitorState, ts: int, seq: int) -> None:
    state.last_ts = max(state.last_ts, ts)
    state.last_seq = max(state.last_seq, seq)


def _add_symbol(state: MonitorState, symbol: str) -> None:
    if symbol not in state.symbols:
        state.symbols.append(symbol)
    if state.selected is None:
        state.selected = symbol


def _select(state: MonitorState, event: SelectSymbol) -> None:
    if event.symbol is not None:
        if event.symbol in state.symbols:
            state.selected = event.symbol
        return
    if not state.symbols:
        return
    index = state.symbols.index(state.selected) if state.selected in state.symbols else 0
    state.selected = state.symbols[(index + event.step) % len(state.symbols)]


def take_resync(state: MonitorState) -> list[str]:
    """Symbols whose book must be resubscribed (each returned once per loss of sync)."""
    symbols = sorted(state.resync)
    state.resync.clear()
    return symbols
