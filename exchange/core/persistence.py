"""Capture and restore of the core's whole state: the canonical ``CoreState`` of a ``Venue``
(``exchange.core.state`` holds its shape and encoding), and a fresh venue rebuilt from one, with
every derived index (heaps, the GTD deadlines, live-order indexes, open exposure, the margin
watch) recomputed.
``Exchange.capture`` / ``Exchange.restore`` are the entry points.
"""

from __future__ import annotations

from collections import deque

import msgspec

from exchange.core.book import OPEN, Order, OrderBook
from exchange.core.clock import schedule
from exchange.core.market_control import Control
from exchange.core.orders import rest
from exchange.core.state import (
    SNAPSHOT_VERSION,
    AccountSnapshot,
    BookStateSnapshot,
    CoreState,
    DoneOrder,
    HoldingState,
    LevelState,
    OrderState,
    StatusState,
)
from exchange.core.triggers import pending_orders, restore_pending, watch_reduce_only
from exchange.core.venue import Venue


def capture(venue: Venue) -> CoreState:
    """The canonical state of ``venue`` (what a snapshot holds)."""
    reported = venue.reported_equity
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
            reported.get(account.name),
            account.system,
            account.fills,
            account.liquidations,
            account.peak_equity,
            account.max_drawdown,
        )
        for account in venue.accounts.values()
    ]
    books = []
    waiting: dict[str, list[OrderState]] = {}
    for order in pending_orders(venue):
        waiting.setdefault(order.book.symbol, []).append(_order_state(order))
    for book in venue.books.values():
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
                book.symbol,
                book.last_trade,
                book.last_bbo,
                book.mark,
                sides[0],
                sides[1],
                book.instrument.reference_ticks,
                waiting.get(book.symbol, []),
                _status_state(book, venue.controls[book.symbol]),
            )
        )
    done = [DoneOrder(*entry) for entry in venue.done.entries()]
    return CoreState(
        SNAPSHOT_VERSION,
        venue.seq,
        venue.ts,
        venue.next_order_id,
        venue.next_trade_id,
        venue.fee_pool,
        accounts,
        books,
        done,
        venue.round,
        venue.round_name,
        venue.round_cash,
        venue.next_news_id,
    )


def restore(venue: Venue, state: CoreState) -> None:
    """Replace a fresh ``venue``'s state with ``state``; derived indexes are rebuilt.

    Raises ValueError if ``state`` does not fit the venue's config.
    """
    config = venue.config
    venue.accounts.clear()
    venue.account_order.clear()
    venue.api_keys.clear()
    for snap in state.accounts:
        account = venue.open_account(
            snap.name, snap.cash, snap.api_key, snap.max_open_orders, snap.system
        )
        account.deposits = snap.deposits
        account.fills = snap.fills
        account.liquidations = snap.liquidations
        account.peak_equity = snap.peak_equity
        account.max_drawdown = snap.max_drawdown
        account.fees = snap.fees
        account.realized = snap.realized
        account.liquidating = snap.liquidating
        for held in snap.holdings:
            book = venue.books.get(held.symbol)
            if book is None:
                raise ValueError(f"snapshot holds unknown symbol {held.symbol}")
            holding = account.holding(book)
            holding.qty = held.qty
            holding.cost = held.cost
            holding.realized = held.realized
        if snap.reported_equity is not None:
            venue.reported_equity[snap.name] = snap.reported_equity
        if snap.liquidating:
            venue.liquidating[snap.name] = account
    if config.insurance_account not in venue.accounts:
        raise ValueError("snapshot lacks the insurance fund account")
    venue.insurance = venue.accounts[config.insurance_account]
    resting: list[Order] = []
    pending: list[Order] = []
    for snap_book in state.books:
        book = venue.books.get(snap_book.symbol)
        if book is None:
            raise ValueError(f"snapshot has unknown book {snap_book.symbol}")
        for level in snap_book.bids + snap_book.asks:
            for o in level.orders:
                resting.append(_order(venue, o, book))
        for o in snap_book.pending:
            pending.append(_order(venue, o, book))
        if snap_book.reference_ticks:
            book.instrument.set_reference(snap_book.reference_ticks)
        if snap_book.status is not None:
            _restore_status(book, venue.controls[book.symbol], snap_book.status)
        book.last_trade = snap_book.last_trade
        book.last_bbo = tuple(snap_book.last_bbo)  # type: ignore[assignment]
        book.mark = snap_book.mark
    # Queue order within a level is the snapshot's order; live-order indexes are by id,
    # which is the order in which orders became live.
    for order in resting:
        rest(venue, order)
        schedule(venue, order)
        if order.reduce_only:
            watch_reduce_only(venue, order)
    for order in pending:
        restore_pending(venue, order)
        schedule(venue, order)
    for account in venue.accounts.values():
        account.orders = dict(sorted(account.orders.items()))
    for book in venue.books.values():
        book.changed_bids.clear()
        book.changed_asks.clear()
    venue.touched_books.clear()
    for entry in state.done:
        venue.done.remember(entry.order_id, entry.account, entry.status, entry.client_order_id)
    venue.seq = state.seq
    venue.ts = state.ts
    venue.next_order_id = state.next_order_id
    venue.next_trade_id = state.next_trade_id
    venue.fee_pool = state.fee_pool
    venue.round = state.round
    venue.round_name = state.round_name
    venue.round_cash = state.round_cash
    venue.next_news_id = state.next_news_id
    for account in venue.accounts.values():
        if account is not venue.insurance and not account.liquidating:
            cushion = account.cushion()
            if cushion >= 0:
                venue.watch.arm(account, cushion)


def _order(venue: Venue, o: OrderState, book: OrderBook) -> Order:
    """The order ``o`` of a snapshot, in ``book`` (its account gets a holding there)."""
    account = venue.accounts[o.account]
    account.holding(book)
    return Order(
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
        expire_at=o.expire_at,
        trigger=o.trigger,
        activate_at=o.activate_at,
        reduce_only=o.reduce_only,
        triggered=o.triggered,
        pending=o.pending,
        reserve=o.reserve,
        display=o.display,
        shown=o.shown,
    )


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
        order.expire_at,
        order.trigger,
        order.activate_at,
        order.reduce_only,
        order.triggered,
        order.pending,
        order.reserve,
        order.display,
        order.shown,
    )


def _status_state(book: OrderBook, control: Control) -> StatusState | None:
    if (
        book.state == OPEN
        and control.reason == "admin"
        and control.until is None
        and not control.reopen_auction_ns
        and not control.info_sent
        and control.info_due is None
        and not control.lows
        and not control.highs
    ):
        return None  # as a fresh venue has it
    return StatusState(
        book.state,  # type: ignore[arg-type]
        control.reason,
        control.until,
        control.reopen_auction_ns,
        control.info_sent,
        control.info_due,
        list(control.lows),
        list(control.highs),
    )


def _restore_status(book: OrderBook, control: Control, state: StatusState) -> None:
    book.state = state.state
    instrument = book.instrument
    instrument.info = msgspec.structs.replace(instrument.info, status=state.state)
    control.reason = state.reason
    control.until = state.until
    control.reopen_auction_ns = state.reopen_auction_ns
    control.info_sent = state.info_sent
    control.info_due = state.info_due
    control.lows = deque((ts, ticks) for ts, ticks in state.lows)
    control.highs = deque((ts, ticks) for ts, ticks in state.highs)
