"""Snapshot and restore of the complete core state, and its hash.

A snapshot is msgpack of plain Structs in a canonical order: accounts in creation order, each
book's levels best first with orders in queue (FIFO) order, finished-order memory oldest
first. Everything else (heaps, exposure sums, indexes, the margin watch) is derived on restore.
``state_hash`` is the BLAKE2b of the snapshot, so two cores that processed the same commands
have the same hash, and a restored core hashes like the one it was taken from.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

from exchange.core.accounts import AccountState, Holding
from exchange.core.book import Order
from exchange.protocol.messages import OrderStatus, OrderType, SelfTradePrevention, TimeInForce

if TYPE_CHECKING:
    from exchange.core.config import CoreConfig
    from exchange.core.exchange import Exchange

SNAPSHOT_VERSION = 1


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


class LevelState(msgspec.Struct, array_like=True, frozen=True):
    price: int
    orders: list[OrderState]


class BookStateSnapshot(msgspec.Struct, array_like=True, frozen=True):
    symbol: str
    last_trade: int
    last_bbo: tuple[int, int, int, int]
    mark: float
    bids: list[LevelState]
    asks: list[LevelState]


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


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CoreState)


def _order_state(order: Order) -> OrderState:
    return OrderState(
        order.order_id,
        order.account.name,
        order.is_buy,
        order.price,
        order.qty,
        order.leaves,
        order.cum_qty,
        order.cum_cost,
        order.client_order_id,
        order.order_type,
        order.tif,
        order.post_only,
        order.stp,
        order.liquidation,
    )


def capture(exchange: Exchange) -> CoreState:
    """The canonical state of ``exchange``."""
    accounts = [
        AccountSnapshot(
            account.name,
            account.api_key,
            account.cash,
            account.deposits,
            account.fees,
            account.realized,
            account.liquidating,
            account.max_open_orders,
            [HoldingState(s, h.qty, h.cost, h.realized) for s, h in account.holdings.items()],
            exchange._reported_equity.get(account.name),
        )
        for account in exchange._accounts.values()
    ]
    books = []
    for book in exchange._books.values():
        sides = []
        for levels, prices in (
            (book.bids, sorted(book.bids, reverse=True)),
            (book.asks, sorted(book.asks)),
        ):
            sides.append(
                [
                    LevelState(p, [_order_state(o) for o in levels[p].orders if o.live])
                    for p in prices
                ]
            )
        books.append(
            BookStateSnapshot(
                book.symbol, book.last_trade, book.last_bbo, book.mark, sides[0], sides[1]
            )
        )
    done = []
    for order_id in exchange._done_fifo:
        entry = exchange._done.get(order_id)
        if entry is not None:
            done.append(DoneOrder(order_id, entry[0], entry[1], entry[2]))
    return CoreState(
        SNAPSHOT_VERSION,
        exchange._seq,
        exchange._ts,
        exchange._next_order_id,
        exchange._next_trade_id,
        exchange._fee_pool,
        accounts,
        books,
        done,
    )


def snapshot_bytes(exchange: Exchange) -> bytes:
    return _encoder.encode(capture(exchange))


def state_hash(exchange: Exchange) -> str:
    return hashlib.blake2b(snapshot_bytes(exchange), digest_size=16).hexdigest()


def restore(config: CoreConfig, data: bytes) -> Exchange:
    """A core equal in every observable way to the one ``data`` was taken from.

    Raises ValueError if ``data`` is not a snapshot of this version or does not fit ``config``.
    """
    from exchange.core.exchange import Exchange

    try:
        state = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a core snapshot: {exc}") from exc
    if state.version != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {state.version}, expected {SNAPSHOT_VERSION}")
    exchange = Exchange(config)
    exchange._accounts.clear()
    exchange._account_order.clear()
    exchange._api_keys.clear()
    for snap in state.accounts:
        account = AccountState(snap.name, snap.cash, snap.api_key, snap.max_open_orders)
        account.deposits = snap.deposits
        account.fees = snap.fees
        account.realized = snap.realized
        account.liquidating = snap.liquidating
        exchange._account_order[snap.name] = len(exchange._accounts)
        exchange._accounts[snap.name] = account
        if snap.api_key is not None:
            exchange._api_keys[snap.api_key] = account
        for held in snap.holdings:
            book = exchange._books.get(held.symbol)
            if book is None:
                raise ValueError(f"snapshot holds unknown symbol {held.symbol}")
            holding = account.holdings[held.symbol] = Holding(book)
            holding.qty = held.qty
            holding.cost = held.cost
            holding.realized = held.realized
        if snap.reported_equity is not None:
            exchange._reported_equity[snap.name] = snap.reported_equity
        if snap.liquidating:
            exchange._liquidating[snap.name] = account
    if config.insurance_account not in exchange._accounts:
        raise ValueError("snapshot lacks the insurance fund account")
    exchange.insurance = exchange._accounts[config.insurance_account]
    resting: list[Order] = []
    for snap_book in state.books:
        book = exchange._books.get(snap_book.symbol)
        if book is None:
            raise ValueError(f"snapshot has unknown book {snap_book.symbol}")
        for level in snap_book.bids + snap_book.asks:
            for o in level.orders:
                account = exchange._accounts[o.account]
                order = Order(
                    order_id=o.order_id,
                    account=account,
                    book=book,
                    is_buy=o.is_buy,
                    price=o.price,
                    qty=o.qty,
                    leaves=o.leaves,
                    cum_qty=o.cum_qty,
                    cum_cost=o.cum_cost,
                    client_order_id=o.client_order_id,
                    order_type=o.order_type,
                    tif=o.tif,
                    post_only=o.post_only,
                    stp=o.stp,
                    liquidation=o.liquidation,
                )
                account.holding(book)
                resting.append(order)
        book.last_trade = snap_book.last_trade
        book.last_bbo = tuple(snap_book.last_bbo)  # type: ignore[assignment]
        book.mark = snap_book.mark
    # Queue order within a level is the snapshot's order; live-order indexes are by id,
    # which is the order in which orders became live.
    for order in resting:
        exchange._rest(order)
    for account in exchange._accounts.values():
        account.orders = dict(sorted(account.orders.items()))
    for book in exchange._books.values():
        book.changed_bids.clear()
        book.changed_asks.clear()
    exchange._touched_books.clear()
    for done in state.done:
        exchange._done[done.order_id] = (done.account, done.status, done.client_order_id)
        exchange._done_fifo.append(done.order_id)
        if done.client_order_id is not None:
            exchange._done_cids[(done.account, done.client_order_id)] = done.order_id
    exchange._seq = state.seq
    exchange._ts = state.ts
    exchange._next_order_id = state.next_order_id
    exchange._next_trade_id = state.next_trade_id
    exchange._fee_pool = state.fee_pool
    for account in exchange._accounts.values():
        if account is not exchange.insurance and not account.liquidating:
            cushion = account.cushion()
            if cushion >= 0:
                exchange._watch.arm(account, cushion)
    return exchange
