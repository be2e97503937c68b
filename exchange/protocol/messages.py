"""Every wire message of the public contract (PROTOCOL.md), as frozen msgspec Structs.

One place for all shapes: client requests to the gateway, the gateway's and engine's
replies, public market data, and the engine's internal event stream. Each Struct is tagged
with its ``"type"`` so that one decoder per direction dispatches a tagged union.

Requests reject unknown fields (``forbid_unknown_fields``); server messages are plain.
Server-side Structs use ``gc=False``: they never hold reference cycles, and skipping GC
tracking makes them cheaper to build on the hot path.

Imports only msgspec and the standard library (enforced by tests/unit/test_import_rules.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market", "stop", "stop_limit", "take_profit", "take_profit_limit"]
TimeInForce = Literal["gtc", "ioc", "fok", "gtd"]
SelfTradePrevention = Literal["expire_taker", "expire_maker", "expire_both"]
ExecType = Literal["new", "trade", "canceled", "replaced", "rejected", "expired", "triggered"]
OrderStatus = Literal["new", "partially_filled", "filled", "canceled", "rejected", "expired"]
Liquidity = Literal["maker", "taker"]
Aggressor = Literal["buy", "sell", "auction"]
"""The side that took liquidity; ``auction`` for the trades of an auction's uncross (§3.2)."""
MarketState = Literal["open", "halted", "auction"]
StatusReason = Literal["admin", "circuit_breaker", "schedule"]
RequestInt = Annotated[int, msgspec.Meta(ge=-(2**63) + 1, le=2**63 - 1)]
"""An integer a client may use as an id: signed 64-bit, so every reply can echo it."""
RequestId = str | RequestInt | None
OrderId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""An order id in a request: the engine's ids are positive 64-bit integers."""

RejectReason = Literal[
    "unknown_symbol",
    "invalid_price",
    "invalid_qty",
    "price_band",
    "max_order_qty",
    "insufficient_margin",
    "max_position",
    "max_open_orders",
    "rate_limited",
    "post_only_would_cross",
    "fok_unfilled",
    "no_liquidity",
    "duplicate_client_order_id",
    "unknown_order",
    "too_late",
    "self_trade",
    "account_liquidating",
    "engine_unavailable",
    "invalid_order",
    "gtd_expired",
    "reduce_only",
    "market_halted",
]

ErrorCode = Literal[
    "invalid_message",
    "not_logged_in",
    "auth_failed",
    "already_logged_in",
    "register_disabled",
    "account_exists",
    "forbidden",
    "unknown_channel",
    "slow_consumer",
    "engine_unavailable",
    "rate_limited",
    "internal_error",
    "unknown_symbol",
    "not_found",
    "unknown_order",
    "unauthorized",
    "method_not_allowed",
    "payload_too_large",
]


class _Request(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", kw_only=True
):
    """Base of every client request: an optional client-chosen ``req_id`` echoed on replies."""

    req_id: RequestId = None


class _Server(msgspec.Struct, frozen=True, gc=False, tag_field="type", kw_only=True):
    """Base of every message a server sends."""


# --------------------------------------------------------------------------- requests


class Login(_Request, frozen=True, tag="login"):
    api_key: str
    cancel_on_disconnect: bool = False


class Register(_Request, frozen=True, tag="register"):
    account: str
    cash: float


class NewOrder(_Request, frozen=True, tag="new_order"):
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = "limit"
    price: float | None = None
    tif: TimeInForce = "gtc"
    post_only: bool = False
    client_order_id: str | None = None
    stp: SelfTradePrevention = "expire_taker"
    expire_at: int | None = None
    """``tif`` ``gtd`` only: ns since the epoch; what is left then ends ``expired``."""
    trigger_price: float | None = None
    """Conditional types only (``stop``, ``stop_limit``, ``take_profit``,
    ``take_profit_limit``): the last trade price that fires the order (PROTOCOL §3.1)."""
    reduce_only: bool = False
    """The order may only shrink the account's position (cut to it, else rejected)."""
    activate_at: int | None = None
    """ns since the epoch: accepted now, enters matching (or arms its trigger) only then."""
    display_qty: Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)] | None = None
    """An iceberg (gtc/gtd limit orders): the book and the feed show at most this much; each
    new slice goes to the back of its price's queue (PROTOCOL §3.1)."""


class CancelOrder(_Request, frozen=True, tag="cancel_order"):
    order_id: OrderId | None = None
    client_order_id: str | None = None


class AmendOrder(_Request, frozen=True, tag="amend_order"):
    order_id: OrderId | None = None
    client_order_id: str | None = None
    qty: int | None = None
    price: float | None = None
    trigger_price: float | None = None
    """A conditional order's new trigger price (only before it fires)."""


class CancelAll(_Request, frozen=True, tag="cancel_all"):
    symbol: str | None = None


class GetAccount(_Request, frozen=True, tag="get_account"):
    pass


class GetOrders(_Request, frozen=True, tag="get_orders"):
    symbol: str | None = None


class Ping(_Request, frozen=True, tag="ping"):
    pass


class GetOrder(_Request, frozen=True, tag="get_order"):
    """One of the account's orders by id, live or remembered done (REST
    ``GET /api/v1/orders/{order_id}``; not a WebSocket request). Answered with ``order`` or an
    ``error`` ``unknown_order``."""

    order_id: OrderId


class CreateAccount(_Request, frozen=True, tag="create_account"):
    """Engine command (never from clients): open an account, e.g. for a ``register`` request.

    The engine process picks the API key, so replaying the journal recreates the same key.
    """

    account: str
    cash: float
    api_key: str | None = None
    max_open_orders: int | None = None


class Revalue(_Request, frozen=True, tag="revalue"):
    """Engine command (timer): publish ``account_update`` for every account whose equity moved
    with the marks since its last update."""


class AdvanceTime(_Request, frozen=True, tag="advance_time"):
    """Engine command (timer): time has reached the command's input ``ts``; every live GTD
    order with ``expire_at <= ts`` ends ``expired`` (``gtd_expired``), in (expire_at, order_id)
    order, and every scheduled order with ``activate_at <= ts`` activates (in time order with
    the expiries). Journaled like any command, so a replay does both at the same ``seq``."""


class RankAccounts(_Request, frozen=True, tag="rank_accounts"):
    """Engine command (timer, ``[engine] leaderboard_interval_ms``): publish the round's
    ``leaderboard`` (and measure each account's drawdown at it)."""


class PublishNews(_Request, frozen=True, tag="publish_news"):
    """Operator request (admin sessions only, PROTOCOL §3.3): a ``news`` message to every
    session and the relay's ``news`` channel. ``shock`` (signed fraction) moves each named
    symbol's reference price to reference × (1 + shock), rounded half-even to the tick."""

    headline: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    symbols: Annotated[list[str], msgspec.Meta(max_length=64)] = []
    sentiment: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] = 0.0
    body: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    shock: Annotated[float, msgspec.Meta(gt=-1.0, le=10.0)] | None = None


class StartRound(_Request, frozen=True, tag="start_round"):
    """Operator request (admin sessions only, PROTOCOL §3.3): a new round. Every account that
    is not a system account has its orders cancelled, its positions closed at the mark (no
    fee) and its cash set to ``cash``; then ``round_started`` goes to everyone."""

    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    cash: Annotated[float, msgspec.Meta(gt=0.0, le=1e15)] = 100_000.0


class SetStatus(_Request, frozen=True, tag="set_status"):
    """Operator request (admin sessions only, PROTOCOL §3.2): the trading status of ``symbol``
    (``*``: every symbol). ``halted`` with ``until`` (ns) reopens by itself then, through an
    auction of ``auction_s`` seconds (0 or absent: straight to ``open``); ``auction`` with
    ``auction_s`` ends (uncross, then ``open``) after that long, without it at the next
    ``set_status`` ``open``."""

    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    status: MarketState
    until: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    auction_s: Annotated[float, msgspec.Meta(ge=0.0, le=86_400.0)] | None = None


OperatorCommand = PublishNews | StartRound | SetStatus
"""What only an admin session may send (§3.3); ``error`` ``forbidden`` from anyone else."""
ClientRequest = (
    Login
    | Register
    | NewOrder
    | CancelOrder
    | AmendOrder
    | CancelAll
    | GetAccount
    | GetOrders
    | Ping
    | PublishNews
    | StartRound
    | SetStatus
)
"""What a client may send the gateway's order-entry port."""
OrderCommand = NewOrder | CancelOrder | AmendOrder | CancelAll
"""The client requests that change exchange state."""
CoreCommand = (
    NewOrder
    | CancelOrder
    | AmendOrder
    | CancelAll
    | CreateAccount
    | Revalue
    | AdvanceTime
    | RankAccounts
    | PublishNews
    | StartRound
    | SetStatus
)
"""Everything ``Exchange.submit`` accepts, and so everything the journal records."""


# --------------------------------------------------------------------------- order entry replies


class Limits(msgspec.Struct, frozen=True, gc=False):
    orders_per_second: float
    burst: int
    max_open_orders: int


class LoggedIn(_Server, frozen=True, tag="logged_in"):
    """``account`` is null and ``admin`` true for an operator session (§3.3), which has no
    account and no limits of its own."""

    account: str | None
    limits: Limits | None
    req_id: RequestId = None
    admin: bool = False


class Registered(_Server, frozen=True, tag="registered"):
    account: str
    api_key: str
    limits: Limits
    req_id: RequestId = None


class Pong(_Server, frozen=True, tag="pong"):
    ts: int | None = None
    req_id: RequestId = None


class Error(_Server, frozen=True, tag="error"):
    """A message that could not be handled; ``ref`` is its client_order_id, else req_id;
    ``req_id`` echoes the request's own whenever it could be read."""

    code: ErrorCode
    text: str
    ref: RequestId = None
    retry_after_ms: int | None = None
    req_id: RequestId = None


def ref_for(client_order_id: str | int | None, req_id: RequestId) -> RequestId:
    """The ``ref`` of an ``error`` about a request: its ``client_order_id``, else its
    ``req_id`` (None when it has neither). The one statement of the rule."""
    return req_id if client_order_id is None else client_order_id


class ExecutionReport(_Server, frozen=True, tag="execution_report"):
    """One order transition (FIX semantics). ``account`` names the owner, as FIX tag 1 does."""

    exec_type: ExecType
    status: OrderStatus
    order_id: int | None
    client_order_id: str | None
    account: str
    symbol: str
    side: Side
    order_type: OrderType
    tif: TimeInForce
    price: float | None
    qty: int
    cum_qty: int
    leaves_qty: int
    avg_px: float
    trade_id: int | None = None
    last_px: float | None = None
    last_qty: int | None = None
    liquidity: Liquidity | None = None
    fee: float | None = None
    reject_reason: RejectReason | None = None
    text: str | None = None
    post_only: bool = False
    liquidation: bool = False
    retry_after_ms: int | None = None
    req_id: RequestId = None
    ts: int | None = None
    seq: int | None = None
    expire_at: int | None = None
    trigger_price: float | None = None
    activate_at: int | None = None
    reduce_only: bool = False
    triggered: bool = False
    display_qty: int | None = None


class CancelReject(_Server, frozen=True, tag="cancel_reject"):
    request: Literal["cancel", "amend"]
    order_id: int | None
    client_order_id: str | None
    reject_reason: RejectReason
    text: str
    status: OrderStatus | None
    account: str
    retry_after_ms: int | None = None
    req_id: RequestId = None
    ts: int | None = None
    seq: int | None = None


class CancelAllDone(_Server, frozen=True, tag="cancel_all_done"):
    canceled: int
    account: str
    symbol: str | None = None
    req_id: RequestId = None
    ts: int | None = None
    seq: int | None = None


class Position(msgspec.Struct, frozen=True, gc=False):
    symbol: str
    qty: int
    avg_px: float
    mark_px: float
    realized_pnl: float
    unrealized_pnl: float


class AccountUpdate(_Server, frozen=True, tag="account_update"):
    account: str
    cash: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    initial_margin: float
    maintenance_margin: float
    available: float
    positions: list[Position]
    liquidating: bool = False
    ts: int | None = None
    seq: int | None = None


class Account(_Server, frozen=True, tag="account"):
    """Reply to ``get_account``: the shape of ``account_update`` as of event ``seq``."""

    account: str
    cash: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    initial_margin: float
    maintenance_margin: float
    available: float
    positions: list[Position]
    liquidating: bool = False
    ts: int | None = None
    seq: int | None = None
    req_id: RequestId = None


class OrderInfo(msgspec.Struct, frozen=True, gc=False):
    """A live order as ``get_orders`` lists it: the order fields of an execution report."""

    order_id: int
    client_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    tif: TimeInForce
    price: float | None
    qty: int
    cum_qty: int
    leaves_qty: int
    avg_px: float
    status: OrderStatus
    post_only: bool = False
    expire_at: int | None = None
    trigger_price: float | None = None
    activate_at: int | None = None
    reduce_only: bool = False
    triggered: bool = False
    display_qty: int | None = None


class OrderState(_Server, frozen=True, tag="order"):
    """Reply to ``get_order``. A live order (``live`` true) carries every field of
    ``OrderInfo``; a done order the engine still remembers carries only ``order_id``,
    ``client_order_id`` and its final ``status`` (the done-order memory keeps no more), the
    other fields null."""

    order_id: int
    client_order_id: str | None
    status: OrderStatus
    live: bool
    symbol: str | None = None
    side: Side | None = None
    order_type: OrderType | None = None
    tif: TimeInForce | None = None
    price: float | None = None
    qty: int | None = None
    cum_qty: int | None = None
    leaves_qty: int | None = None
    avg_px: float | None = None
    post_only: bool | None = None
    req_id: RequestId = None
    seq: int | None = None
    expire_at: int | None = None
    trigger_price: float | None = None
    activate_at: int | None = None
    reduce_only: bool | None = None
    triggered: bool | None = None


class Orders(_Server, frozen=True, tag="orders"):
    orders: list[OrderInfo]
    symbol: str | None = None
    req_id: RequestId = None
    seq: int | None = None


class News(_Server, frozen=True, tag="news"):
    """A news item (§3.3): to every gateway session and on the relay's ``news`` channel.
    ``reference_prices`` holds the new reference price of each symbol a ``shock`` moved."""

    news_id: int
    headline: str
    body: str | None
    symbols: list[str]
    sentiment: float
    shock: float | None
    ts: int
    seq: int
    reference_prices: dict[str, float] = {}
    req_id: RequestId = None


class MarketStatus(_Server, frozen=True, tag="market_status"):
    """An instrument's trading status changed (§3.2): to every gateway session and on the
    relay's ``status`` channel. ``until``: when a halt or an auction ends by itself (ns)."""

    symbol: str
    status: MarketState
    reason: StatusReason
    until: int | None
    ts: int
    seq: int
    req_id: RequestId = None


class AuctionInfo(_Server, frozen=True, tag="auction"):
    """The state of an instrument's call auction (§3.2, relay ``status`` channel): the price
    and quantity that would trade if it uncrossed now (null and 0 when nothing crosses), the
    signed imbalance (buy - sell) at that price, and when it ends (ns, null: at an operator's
    ``set_status`` ``open``)."""

    symbol: str
    indicative_price: float | None
    indicative_qty: int
    imbalance: int
    ends_at: int | None
    ts: int
    seq: int


class RoundStarted(_Server, frozen=True, tag="round_started"):
    """A new round began (§3.3): to every gateway session and on the relay's ``rounds``."""

    round: int
    name: str
    cash: float
    ts: int
    seq: int
    req_id: RequestId = None


class LeaderboardRow(msgspec.Struct, frozen=True, gc=False):
    account: str
    equity: float
    pnl: float
    return_pct: float
    max_drawdown: float
    trades: int
    liquidations: int


class Leaderboard(_Server, frozen=True, tag="leaderboard"):
    """The round's standings (§4 ``rounds`` channel), best ``equity`` first (ties: name), up
    to 100 rows, system accounts left out. Emitted by the engine with every mark-to-market
    pass (``[engine] mark_interval_ms``, 1 s by default)."""

    round: int
    ts: int
    rows: list[LeaderboardRow]
    seq: int


GatewayMessage = (
    LoggedIn
    | Registered
    | Pong
    | Error
    | ExecutionReport
    | CancelReject
    | CancelAllDone
    | AccountUpdate
    | Account
    | Orders
    | News
    | RoundStarted
    | MarketStatus
)
"""What the gateway sends its clients."""


# --------------------------------------------------------------------------- market data

PriceLevel = tuple[float, int]


class Subscribe(_Request, frozen=True, tag="subscribe"):
    channels: list[str]
    depth: int = 10
    token: str | None = None


class Unsubscribe(_Request, frozen=True, tag="unsubscribe"):
    channels: list[str]


MarketDataRequest = Subscribe | Unsubscribe | Ping


class Subscribed(_Server, frozen=True, tag="subscribed"):
    channels: list[str]
    req_id: RequestId = None


class Unsubscribed(_Server, frozen=True, tag="unsubscribed"):
    channels: list[str]
    req_id: RequestId = None


class InstrumentInfo(msgspec.Struct, frozen=True, gc=False):
    symbol: str
    tick_size: float
    lot_size: float
    reference_price: float
    initial_margin: float
    maintenance_margin: float
    max_order_qty: int
    max_position: int
    price_band: float
    maker_fee: float
    taker_fee: float
    status: MarketState = "open"
    """The instrument's trading status now (§3.2)."""


class Instruments(_Server, frozen=True, tag="instruments"):
    instruments: list[InstrumentInfo]


class BookSnapshot(_Server, frozen=True, tag="book_snapshot"):
    symbol: str
    seq: int
    ts: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class BookUpdate(_Server, frozen=True, tag="book_update"):
    symbol: str
    seq: int
    prev_seq: int
    ts: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class Trade(_Server, frozen=True, tag="trade"):
    """The public trade: no account names."""

    symbol: str
    trade_id: int
    price: float
    qty: int
    aggressor: Aggressor
    ts: int
    seq: int


class Bbo(_Server, frozen=True, tag="bbo"):
    symbol: str
    bid: float | None
    bid_qty: int
    ask: float | None
    ask_qty: int
    ts: int
    seq: int


class Liquidation(_Server, frozen=True, tag="liquidation"):
    account: str
    symbol: str
    side: Side
    qty: int
    price: float
    ts: int
    seq: int


class Heartbeat(_Server, frozen=True, tag="heartbeat"):
    ts: int
    seqs: dict[str, int]


class Trades(_Server, frozen=True, tag="trades"):
    symbol: str
    trades: list[Trade]


MarketDataMessage = (
    Subscribed
    | Unsubscribed
    | Instruments
    | BookSnapshot
    | BookUpdate
    | Trade
    | Bbo
    | Liquidation
    | Heartbeat
    | AccountUpdate
    | Error
    | Pong
    | News
    | RoundStarted
    | Leaderboard
    | MarketStatus
    | AuctionInfo
)
"""What the market-data relay sends its subscribers (``account_update`` only on the
``accounts`` channel, with a monitor token)."""


# --------------------------------------------------------------------------- engine events


class BookDelta(_Server, frozen=True, tag="book_delta"):
    """Engine event: the levels of one symbol that one command changed (absolute qty, 0 = gone).

    The relay chains these per symbol into public ``book_update`` messages with ``prev_seq``.
    """

    symbol: str
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    ts: int
    seq: int


class Fill(_Server, frozen=True, tag="fill"):
    """Engine event: one trade with both sides named (for the exporter; the relay strips it)."""

    symbol: str
    trade_id: int
    price: float
    qty: int
    aggressor: Aggressor
    buy_account: str
    sell_account: str
    buy_order_id: int
    sell_order_id: int
    buy_fee: float
    sell_fee: float
    liquidation: bool
    ts: int
    seq: int


EngineEvent = (
    ExecutionReport
    | CancelReject
    | CancelAllDone
    | AccountUpdate
    | BookDelta
    | Fill
    | Bbo
    | Liquidation
    | Error
    | News
    | RoundStarted
    | Leaderboard
    | MarketStatus
    | AuctionInfo
)
"""What ``exchange.core.Exchange.submit`` returns: each carries the engine-wide ``seq``."""
