"""The shape of a core snapshot and its encoding; the core itself captures and restores its
state (``Exchange.capture``, ``Exchange.restore``).

A snapshot is msgpack of plain Structs in a canonical order: accounts in creation order, each
book's levels best first with orders in queue (FIFO) order, finished-order memory oldest
first. Everything else (heaps, exposure sums, indexes, the margin watch) is derived on restore.
``state_hash`` is the BLAKE2b of the snapshot, so two cores that processed the same commands
have the same hash, and a restored core hashes like the one it was taken from.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import msgspec

from exchange.protocol.messages import (
    MarketState,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    StatusReason,
    TimeInForce,
)

SNAPSHOT_VERSION = 3
"""2: ``OrderState.expire_at`` (GTD orders). 3: rounds, news and moved reference prices
(``CoreState.round``..., ``AccountSnapshot.system``..., ``BookStateSnapshot.reference_ticks``),
and the conditional orders' fields."""


class OrderState(msgspec.Struct, array_like=True, frozen=True):
    """A resting order (enum fields validated on decode)."""

    order_id: int
    account: str
    is_buy: bool
    price: int
    qty: int
    leaves: int
    cum_qty: int
    cum_cost: int
    client_order_id: str | None
    order_type: OrderType
    tif: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    liquidation: bool
    expire_at: int | None = None
    trigger: int = 0
    """Ticks of a conditional order's trigger price (0: none)."""
    activate_at: int | None = None
    reduce_only: bool = False
    triggered: bool = False
    pending: int = 0
    """``book.ARMED`` / ``book.SCHEDULED`` for a waiting order (``BookStateSnapshot.pending``)."""
    reserve: int = 0
    """Ticks a waiting order's exposure is reserved at."""
    display: int = 0
    """An iceberg's ``display_qty`` (0: not one)."""
    shown: int = 0
    """An iceberg's slice on the book now."""


class LevelState(msgspec.Struct, array_like=True, frozen=True):
    price: int
    orders: list[OrderState]


class StatusState(msgspec.Struct, array_like=True, frozen=True):
    """A symbol's trading status record (``exchange.core.market_control.Control``)."""

    state: MarketState
    reason: StatusReason
    until: int | None
    reopen_auction_ns: int
    info_sent: int
    info_due: int | None
    lows: list[tuple[int, int]]
    highs: list[tuple[int, int]]


class BookStateSnapshot(msgspec.Struct, array_like=True, frozen=True):
    symbol: str
    last_trade: int
    last_bbo: tuple[int, int, int, int]
    mark: float
    bids: list[LevelState]
    asks: list[LevelState]
    reference_ticks: int = 0
    """The reference price now (a news shock moves it); 0: the configured one."""
    pending: list[OrderState] = []
    """The symbol's waiting orders (armed conditional, scheduled), by order id; the trigger
    book and the activation schedule are rebuilt from them on restore."""
    status: StatusState | None = None
    """Trading status when not plainly open, or a circuit breaker's window (None: open)."""


class HoldingState(msgspec.Struct, array_like=True, frozen=True):
    symbol: str
    qty: int
    cost: int
    realized: int


class AccountSnapshot(msgspec.Struct, array_like=True, frozen=True):
    name: str
    api_key: str | None
    cash: int
    deposits: int
    fees: int
    realized: int
    liquidating: bool
    max_open_orders: int
    holdings: list[HoldingState]
    reported_equity: float | None
    system: bool = False
    fills: int = 0
    liquidations: int = 0
    peak_equity: int = 0
    max_drawdown: int = 0


class DoneOrder(msgspec.Struct, array_like=True, frozen=True):
    order_id: int
    account: str
    status: OrderStatus
    client_order_id: str | None


class CoreState(msgspec.Struct, array_like=True, frozen=True):
    version: int
    seq: int
    ts: int
    next_order_id: int
    next_trade_id: int
    fee_pool: int
    accounts: list[AccountSnapshot]
    books: list[BookStateSnapshot]
    done: list[DoneOrder]
    round: int = 0
    round_name: str = ""
    round_cash: int = 0
    next_news_id: int = 1


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CoreState)


def encode(state: CoreState) -> bytes:
    """The snapshot bytes of ``state``."""
    return _encoder.encode(state)


def decode(data: bytes) -> CoreState:
    """The state in snapshot ``data``. Raises ValueError if ``data`` is not a snapshot of this
    version."""
    try:
        state = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a core snapshot: {exc}") from exc
    if state.version != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {state.version}, expected {SNAPSHOT_VERSION}")
    return state


class Capturable(Protocol):
    """Anything that can give its canonical state (``Exchange``)."""

    def capture(self) -> CoreState: ...


def capture(source: Capturable) -> CoreState:
    """The canonical state of ``source`` (``Exchange.capture``)."""
    return source.capture()


def snapshot_bytes(source: Capturable) -> bytes:
    """The snapshot bytes of ``source``'s state."""
    return encode(source.capture())


def state_hash(source: Capturable) -> str:
    """BLAKE2b (16 bytes, hex) of ``source``'s snapshot bytes."""
    return hashlib.blake2b(snapshot_bytes(source), digest_size=16).hexdigest()
