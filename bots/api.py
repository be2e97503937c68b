"""The public Strategy API: everything a strategy may import, and nothing that does I/O.

A strategy is a plain object. The runner (``python -m bots``) owns the sockets: it keeps the
local book, your orders and your account up to date in a ``Context``, calls your hooks when
something happens, then asks ``next_order(context)`` what to do, and sends the intents you
return (rate-limited, below the account's limits)::

    from bots.api import Context, LimitOrder, Strategy, StrategyConfig

    class Config(StrategyConfig):
        size: int = 1

    class JoinBid(Strategy[Config]):
        def next_order(self, ctx: Context):
            book = ctx.book()
            if book.best_bid and not ctx.open_orders():
                return LimitOrder("buy", book.best_bid.price, self.config.size)
            return None

Contract of the runner (see docs/strategies.md):

- Hooks and ``next_order`` are called one at a time, never concurrently, and only while the
  bot is logged in and the books of its symbols are in sync with the feed.
- ``on_start`` is called once, before anything else, when the first book has arrived.
- Each hook may return intents too; after every hook call the runner calls ``next_order``,
  unless earlier intents are still waiting for the rate limiter.
- Intents take effect at once in the context: a new order shows in ``open_orders`` with
  status ``pending_new`` until the exchange acknowledges it, a cancelled one as
  ``pending_cancel``. So returning the same intent twice is a bug of the strategy.
- ``ctx.random`` is seeded from ``--seed``: with the same seed and the same feed a strategy
  makes the same decisions.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

import msgspec

from bots.book import Book, Level
from exchange.protocol.messages import (
    Account,
    AccountUpdate,
    AuctionInfo,
    ExecutionReport,
    InstrumentInfo,
    Limits,
    MarketStatus,
    News,
    Position,
    RoundStarted,
    Trade,
)

__all__ = [
    "Account",
    "AccountUpdate",
    "Amend",
    "AuctionInfo",
    "Book",
    "Cancel",
    "CancelAll",
    "ConditionalOrder",
    "ConditionalType",
    "Context",
    "ExecutionReport",
    "InstrumentInfo",
    "Intents",
    "Level",
    "LimitOrder",
    "MarketOrder",
    "MarketStatus",
    "News",
    "Order",
    "OrderIntent",
    "Position",
    "RoundStarted",
    "SelfTradePrevention",
    "Side",
    "Strategy",
    "StrategyConfig",
    "TimeInForce",
    "Trade",
    "amend",
    "bracket",
    "buy",
    "cancel",
    "sell",
    "stop",
    "take_profit",
    "tick_round",
]

NEWS_HISTORY = 100
"""How many news items ``Context.news`` keeps."""

Side = Literal["buy", "sell"]
TimeInForce = Literal["gtc", "ioc", "fok"]
SelfTradePrevention = Literal["expire_taker", "expire_maker", "expire_both"]
OrderState = Literal["pending_new", "new", "partially_filled", "pending_cancel", "pending_replace"]


# --------------------------------------------------------------------------- config


class StrategyConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base class of a strategy's typed parameters.

    Subclass it with annotated fields and defaults; the runner fills it from ``--param k=v``
    (values are read as TOML: ``5``, ``0.25``, ``true``, ``"text"``, ``["a", "b"]``; anything
    else is a string) and ``--params FILE.toml``, and reports unknown names and wrong types.
    """


ConfigT = TypeVar("ConfigT", bound=StrategyConfig)


# --------------------------------------------------------------------------- intents


class LimitOrder(msgspec.Struct, frozen=True):
    """Place a limit order. ``symbol`` None means the bot's main symbol (``--symbol``)."""

    side: Side
    price: float
    qty: int
    symbol: str | None = None
    tif: TimeInForce = "gtc"
    post_only: bool = False
    client_order_id: str | None = None
    stp: SelfTradePrevention = "expire_taker"
    reduce_only: bool = False
    """Only shrink the position (cut to it; rejected when there is none)."""
    display_qty: int | None = None
    """An iceberg (gtc/gtd): the book shows at most this much at a time."""


class MarketOrder(msgspec.Struct, frozen=True):
    """Place a market order (always IOC, or FOK)."""

    side: Side
    qty: int
    symbol: str | None = None
    tif: Literal["ioc", "fok"] = "ioc"
    client_order_id: str | None = None
    stp: SelfTradePrevention = "expire_taker"
    reduce_only: bool = False


ConditionalType = Literal["stop", "stop_limit", "take_profit", "take_profit_limit"]


class ConditionalOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Place a stop or take-profit order (see ``stop()``, ``take_profit()``, ``bracket()``):
    it waits off the book until the last trade reaches ``trigger_price`` (a ``stop`` buy: last
    >= trigger, sell: last <= trigger; a ``take_profit`` the opposite), then enters as a market
    order, or as a limit order at ``price`` for the ``*_limit`` types."""

    side: Side
    qty: int
    trigger_price: float
    order_type: ConditionalType = "stop"
    price: float | None = None
    symbol: str | None = None
    tif: TimeInForce = "gtc"
    reduce_only: bool = False
    client_order_id: str | None = None
    stp: SelfTradePrevention = "expire_taker"


class Cancel(msgspec.Struct, frozen=True, kw_only=True):
    """Cancel one order, named by ``order_id`` or ``client_order_id`` (see ``cancel()``)."""

    order_id: int | None = None
    client_order_id: str | None = None


class Amend(msgspec.Struct, frozen=True, kw_only=True):
    """Change an order's total ``qty``, ``price`` and/or (a waiting stop's) ``trigger_price``
    (see ``amend()``)."""

    order_id: int | None = None
    client_order_id: str | None = None
    qty: int | None = None
    price: float | None = None
    trigger_price: float | None = None


class CancelAll(msgspec.Struct, frozen=True, kw_only=True):
    """Cancel every open order of the account (of ``symbol`` only, when given)."""

    symbol: str | None = None


OrderIntent = LimitOrder | MarketOrder | ConditionalOrder | Cancel | Amend | CancelAll
Intents = OrderIntent | Iterable[OrderIntent] | None
"""What a hook returns: nothing, one intent, or any iterable of intents (sent in order)."""


def buy(qty: int, price: float | None = None, **options: Any) -> LimitOrder | MarketOrder:
    """A buy limit order at ``price``, or a market order when ``price`` is None."""
    if price is None:
        return MarketOrder("buy", qty, **options)
    return LimitOrder("buy", price, qty, **options)


def sell(qty: int, price: float | None = None, **options: Any) -> LimitOrder | MarketOrder:
    """A sell limit order at ``price``, or a market order when ``price`` is None."""
    if price is None:
        return MarketOrder("sell", qty, **options)
    return LimitOrder("sell", price, qty, **options)


def stop(
    side: Side, qty: int, trigger_price: float, price: float | None = None, **options: Any
) -> ConditionalOrder:
    """A stop order: a ``stop`` (market once triggered) or, with ``price``, a ``stop_limit``.
    A buy fires when the last trade rises to ``trigger_price``, a sell when it falls to it."""
    kind: ConditionalType = "stop" if price is None else "stop_limit"
    return ConditionalOrder(
        side=side, qty=qty, trigger_price=trigger_price, order_type=kind, price=price, **options
    )


def take_profit(
    side: Side, qty: int, trigger_price: float, price: float | None = None, **options: Any
) -> ConditionalOrder:
    """A take-profit order (``take_profit``, or ``take_profit_limit`` with ``price``): a sell
    fires when the last trade rises to ``trigger_price``, a buy when it falls to it."""
    kind: ConditionalType = "take_profit" if price is None else "take_profit_limit"
    return ConditionalOrder(
        side=side, qty=qty, trigger_price=trigger_price, order_type=kind, price=price, **options
    )


def bracket(
    position: int, take_profit_price: float, stop_price: float, symbol: str | None = None
) -> list[OrderIntent]:
    """The two exits of a position of ``position`` lots (signed: long > 0): a take-profit at
    ``take_profit_price`` and a stop at ``stop_price``, both reduce-only market orders once
    triggered. When one of them closes the position the exchange cuts the other (reduce-only
    orders end ``expired`` when nothing is left to reduce), so the pair acts as one-cancels-
    the-other. Place it once the entry has filled (reduce-only needs a position); [] when flat.
    """
    if not position:
        return []
    side: Side = "sell" if position > 0 else "buy"
    qty = abs(position)
    return [
        take_profit(side, qty, take_profit_price, symbol=symbol, reduce_only=True),
        stop(side, qty, stop_price, symbol=symbol, reduce_only=True),
    ]


# --------------------------------------------------------------------------- own orders


class Order(msgspec.Struct, kw_only=True):
    """One of your live orders, as the runner tracks it (read it, do not change it).

    ``status`` is ``pending_new`` from the moment you return the intent until the exchange
    acknowledges it (``order_id`` is None until then), ``pending_cancel``/``pending_replace``
    while a cancel/amend is in flight. Done orders leave ``Context.orders``.
    """

    client_order_id: str | None
    order_id: int | None
    symbol: str
    side: Side
    order_type: Literal["limit", "market"] | ConditionalType
    price: float | None
    qty: int
    cum_qty: int = 0
    leaves_qty: int = 0
    avg_px: float = 0.0
    tif: TimeInForce | Literal["gtd"] = "gtc"
    """As the engine reports it: ``gtd`` for a good-till-date order (placed by another tool)."""
    post_only: bool = False
    status: OrderState = "pending_new"
    trigger_price: float | None = None
    """A stop / take-profit order's trigger price."""
    triggered: bool = False
    """True once a stop / take-profit order has fired (it is then in the book or done)."""
    reduce_only: bool = False

    @property
    def pending(self) -> bool:
        """True while a request about this order is in flight."""
        return self.status.startswith("pending")


def cancel(order: Order) -> Cancel:
    """The intent that cancels ``order`` (works before it is acknowledged, too)."""
    return Cancel(order_id=order.order_id, client_order_id=order.client_order_id)


def amend(
    order: Order,
    *,
    price: float | None = None,
    qty: int | None = None,
    trigger_price: float | None = None,
) -> Amend:
    """The intent that changes ``order``'s price, total quantity and/or (a stop or
    take-profit that has not fired) trigger price."""
    return Amend(
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        price=price,
        qty=qty,
        trigger_price=trigger_price,
    )


# --------------------------------------------------------------------------- context


@functools.cache
def _decimals(tick: float) -> int:
    """How many decimals ``tick`` shows (0.25 -> 2, 1.0 -> 0), up to 12."""
    return len(f"{tick:.12f}".rstrip("0").split(".")[1])


def tick_round(price: float, tick: float, up: bool) -> float:
    """``price`` moved to a multiple of ``tick`` (up or down), at least one tick, with the
    tick's decimals so that the wire shows ``101.25``, not ``101.25000000000001``."""
    units = price / tick
    ticks = math.ceil(units - 1e-9) if up else math.floor(units + 1e-9)
    return round(max(ticks, 1) * tick, _decimals(tick))


class Context:
    """What a strategy sees: books, recent trades, instruments, own orders and account.

    The runner keeps it up to date between calls; a strategy reads it and never changes it.
    Tests build one with ``Context.for_test``.
    """

    def __init__(
        self,
        *,
        account: str,
        symbols: Sequence[str],
        rng: random.Random | None = None,
        depth: int = 20,
        trade_history: int = 200,
    ) -> None:
        if not symbols:
            raise ValueError("a bot needs at least one symbol")
        self.account = account
        """This bot's account name."""
        self.symbols: tuple[str, ...] = tuple(symbols)
        """Every symbol the bot follows; the first is the main one (``symbol``)."""
        self.symbol = self.symbols[0]
        self.random = rng if rng is not None else random.Random(0)
        """Seeded randomness: use it (not the ``random`` module) for reproducible runs."""
        self.depth = depth
        self.trade_history = trade_history
        self.now_ns = 0
        """Time of the latest event the runner saw (engine ns; local clock for timers)."""
        self.instruments: dict[str, InstrumentInfo] = {}
        self.books: dict[str, Book] = {s: Book(s) for s in self.symbols}
        self.recent_trades: dict[str, list[Trade]] = {s: [] for s in self.symbols}
        self.orders: dict[str, Order] = {}
        """Live orders by client order id (the runner gives every order one)."""
        self.account_state: AccountUpdate | Account | None = None
        self.limits: Limits | None = None
        self.round = 0
        """The venue's current round (PROTOCOL §3.3); 0 until a ``round_started`` arrived."""
        self.news: list[News] = []
        """The latest news items (up to ``NEWS_HISTORY``), oldest first."""
        self.statuses: dict[str, MarketStatus] = {}
        """The latest ``market_status`` of each symbol (highest ``seq``; from the gateway and
        the relay's ``status`` channel). ``status()`` reads it."""
        self.auctions: dict[str, AuctionInfo] = {}
        """The latest ``auction`` (indicative price and quantity) of each symbol in auction."""

    @classmethod
    def for_test(
        cls,
        symbol: str = "TEST",
        *,
        bids: Iterable[tuple[float, int]] = (),
        asks: Iterable[tuple[float, int]] = (),
        tick_size: float = 0.01,
        reference_price: float = 100.0,
        position: int = 0,
        cash: float = 100_000.0,
        trades: Iterable[tuple[float, int, Side]] = (),
        orders: Iterable[Order] = (),
        seed: int = 0,
        account: str = "test",
    ) -> Context:
        """A context for unit tests: one symbol, a book, a position, trades (price, qty,
        aggressor) and open orders, with no runner and no sockets."""
        ctx = cls(account=account, symbols=[symbol], rng=random.Random(seed))
        ctx.instruments[symbol] = InstrumentInfo(
            symbol=symbol,
            tick_size=tick_size,
            lot_size=1.0,
            reference_price=reference_price,
            initial_margin=0.1,
            maintenance_margin=0.05,
            max_order_qty=10_000,
            max_position=100_000,
            price_band=0.1,
            maker_fee=0.0,
            taker_fee=0.0,
        )
        ctx.books[symbol].reset(bids, asks, 1, 1)
        ctx.recent_trades[symbol] = [
            Trade(symbol=symbol, trade_id=i + 1, price=p, qty=q, aggressor=a, ts=i, seq=i)
            for i, (p, q, a) in enumerate(trades)
        ]
        for i, order in enumerate(orders):
            ctx.orders[order.client_order_id or f"test-{i}"] = order
        mark = ctx.books[symbol].mid or reference_price
        positions = [Position(symbol, position, mark, mark, 0.0, 0.0)] if position else []
        ctx.account_state = AccountUpdate(
            account=account,
            cash=cash,
            equity=cash,
            realized_pnl=0.0,
            unrealized_pnl=0.0,
            fees=0.0,
            initial_margin=abs(position) * mark * 0.1,
            maintenance_margin=abs(position) * mark * 0.05,
            available=cash - abs(position) * mark * 0.1,
            positions=positions,
        )
        return ctx

    # --- market
    def book(self, symbol: str | None = None) -> Book:
        """The local book of ``symbol`` (default: the main symbol)."""
        return self.books[symbol or self.symbol]

    def instrument(self, symbol: str | None = None) -> InstrumentInfo | None:
        """Tick size, fees, margin rates... of ``symbol`` (None before ``instruments`` came)."""
        return self.instruments.get(symbol or self.symbol)

    def status(self, symbol: str | None = None) -> str:
        """The trading status of ``symbol`` (default: the main symbol): ``open``, ``halted``
        (new orders are rejected ``market_halted``; cancels work) or ``auction`` (limit orders
        rest without matching; market, IOC and FOK orders are rejected). From the latest
        ``market_status``, else the ``instruments`` list; ``open`` before either came."""
        symbol = symbol or self.symbol
        known = self.statuses.get(symbol)
        if known is not None:
            return known.status
        info = self.instruments.get(symbol)
        return info.status if info is not None else "open"

    def auction(self, symbol: str | None = None) -> AuctionInfo | None:
        """The latest ``auction`` of ``symbol`` while it is in auction, else None."""
        return self.auctions.get(symbol or self.symbol)

    def bbo(self, symbol: str | None = None) -> tuple[float | None, float | None]:
        """(best bid price, best ask price); None for an empty side."""
        book = self.book(symbol)
        bid, ask = book.best_bid, book.best_ask
        return (bid.price if bid else None, ask.price if ask else None)

    def mid(self, symbol: str | None = None) -> float | None:
        """Mid of the book, else the last trade, else the reference price, else None."""
        mid = self.book(symbol).mid
        if mid is not None:
            return mid
        trades = self.trades(symbol)
        if trades:
            return trades[-1].price
        info = self.instrument(symbol)
        return info.reference_price if info else None

    def trades(self, symbol: str | None = None) -> Sequence[Trade]:
        """Recent public trades of ``symbol``, oldest first (at most ``trade_history``)."""
        return self.recent_trades.get(symbol or self.symbol, ())

    def tick_size(self, symbol: str | None = None) -> float:
        info = self.instrument(symbol)
        return info.tick_size if info else 0.01

    def round_down(self, price: float, symbol: str | None = None) -> float:
        """``price`` rounded down to a valid tick (for bids)."""
        return tick_round(price, self.tick_size(symbol), up=False)

    def round_up(self, price: float, symbol: str | None = None) -> float:
        """``price`` rounded up to a valid tick (for asks)."""
        return tick_round(price, self.tick_size(symbol), up=True)

    # --- own orders
    def open_orders(self, symbol: str | None = None, side: Side | None = None) -> list[Order]:
        """Your live orders (pending ones included) of ``symbol`` (default: main symbol)."""
        symbol = symbol or self.symbol
        return [
            o
            for o in self.orders.values()
            if o.symbol == symbol and (side is None or o.side == side)
        ]

    # --- account
    def position(self, symbol: str | None = None) -> int:
        """Signed position in lots (positive long, negative short)."""
        info = self.position_info(symbol)
        return info.qty if info else 0

    def position_info(self, symbol: str | None = None) -> Position | None:
        """The account's position record of ``symbol`` (avg_px, mark, PnL), if any."""
        symbol = symbol or self.symbol
        if self.account_state is None:
            return None
        for position in self.account_state.positions:
            if position.symbol == symbol:
                return position
        return None

    @property
    def cash(self) -> float:
        return self.account_state.cash if self.account_state else 0.0

    @property
    def equity(self) -> float:
        """Cash plus unrealized PnL."""
        return self.account_state.equity if self.account_state else 0.0

    @property
    def available(self) -> float:
        """Equity minus initial margin: what new orders can still use."""
        return self.account_state.available if self.account_state else 0.0


# --------------------------------------------------------------------------- strategy


class Strategy(Generic[ConfigT]):
    """Base class of every strategy. Override the hooks you need; all return ``Intents``.

    The typed config is ``self.config``, an instance of the class's ``Config``: declare it
    as ``class Mine(Strategy[MyConfig])`` or with a ``Config = MyConfig`` attribute.
    ``timer_interval`` (seconds) sets how often ``on_timer`` runs (None: never).
    """

    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    timer_interval: float | None = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Strategy:
                (arg,) = get_args(base)
                if isinstance(arg, type) and issubclass(arg, StrategyConfig):
                    cls.Config = arg
                return

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else self.Config()  # type: ignore[assignment]

    def on_start(self, ctx: Context) -> Intents:
        """Called once, when the bot is logged in and its first book has arrived."""
        return None

    def on_book(self, ctx: Context, book: Book) -> Intents:
        """The book of ``book.symbol`` changed (snapshot or update)."""
        return None

    def on_trade(self, ctx: Context, trade: Trade) -> Intents:
        """A public trade happened (anyone's, yours included)."""
        return None

    def on_execution(self, ctx: Context, report: ExecutionReport) -> Intents:
        """One of your orders changed: acknowledged, filled, cancelled, rejected, expired."""
        return None

    def on_account(self, ctx: Context, account: AccountUpdate | Account) -> Intents:
        """Your cash, PnL, margin or positions changed."""
        return None

    def on_timer(self, ctx: Context) -> Intents:
        """Called every ``timer_interval`` seconds."""
        return None

    def next_order(self, ctx: Context) -> Intents:
        """What to do now, given the context. Called after every hook call."""
        return None

    def on_news(self, ctx: Context, news: News) -> Intents:
        """A news item was published (``news.symbols``, ``news.sentiment`` -1...1, and any
        ``shock`` that moved reference prices). Also in ``ctx.news``."""
        return None

    def on_round(self, ctx: Context, started: RoundStarted) -> Intents:
        """A new round began: your orders were cancelled, your positions closed, and your
        cash is ``started.cash`` (the account update follows). ``ctx.round`` is its number."""
        return None

    def on_status(self, ctx: Context, status: MarketStatus) -> Intents:
        """A symbol's trading status changed (``status.symbol``, ``status.status``:
        ``open``, ``halted``, ``auction``; ``status.until``: when it ends by itself, ns or
        None). Any symbol, not only yours (``*`` halts every one). ``ctx.status()`` already
        says the new status. Halted: new orders are rejected; auction: only limit orders
        that rest (no market, IOC or FOK)."""
        return None

    def on_stop(self, ctx: Context) -> Intents:
        """Called once on shutdown, before the runner cancels all your orders."""
        return None


_INTENT_TYPES = (LimitOrder, MarketOrder, ConditionalOrder, Cancel, Amend, CancelAll)


def as_intents(value: Intents) -> list[OrderIntent]:
    """Normalise what a hook returned to a list (runner helper). Raises TypeError on junk."""
    if value is None:
        return []
    if isinstance(value, _INTENT_TYPES):
        return [value]
    intents = list(value)
    for intent in intents:
        if not isinstance(intent, _INTENT_TYPES):
            raise TypeError(f"a strategy returned {intent!r}, which is not an order intent")
    return intents
