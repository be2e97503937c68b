"""Capture and restore of the core's whole state: the canonical ``CoreState`` of a ``Venue``
(``exchange.core.state`` holds its shape and encoding), and a fresh venue rebuilt from one, with
every derived index (heaps, the GTD deadlines, live-order indexes, open exposure, the margin
watch) recomputed.
``Exchange.capture`` / ``Exchange.restore`` are the entry points.
"""

from __future__ import annotations

from exchange.core.book import Order
from exchange.core.clock import schedule
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
)
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
        )
        for account in venue.accounts.values()
    ]
    books = []
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
                book.symbol, book.last_trade, book.last_bbo, book.mark, sides[0], sides[1]
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
        account = venue.open_account(snap.name, snap.cash, snap.api_key, snap.max_open_orders)
        account.deposits = snap.deposits
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
    for snap_book in state.books:
        book = venue.books.get(snap_book.symbol)
        if book is None:
            raise ValueError(f"snapshot has unknown book {snap_book.symbol}")
        for level in snap_book.bids + snap_book.asks:
            for o in level.orders:
                account = venue.accounts[o.account]
                resting.append(
                    Order(
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
                    )
                )
                account.holding(book)
        book.last_trade = snap_book.last_trade
        book.last_bbo = tuple(snap_book.last_bbo)  # type: ignore[assignment]
        book.mark = snap_book.mark
    # Queue order within a level is the snapshot's order; live-order indexes are by id,
    # which is the order in which orders became live.
    for order in resting:
        rest(venue, order)
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
    for account in venue.accounts.values():
        if account is not venue.insurance and not account.liquidating:
            cushion = account.cushion()
            if cushion >= 0:
                venue.watch.arm(account, cushion)


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
    )
