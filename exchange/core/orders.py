"""An order's life in the venue: resting in its book (with its holding's open exposure), leaving
it, being indexed as live, ending (canceled, expired, filled) with its report and a place in
the done-order memory.

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from heapq import heapify

from exchange.core.book import ARMED, FIRING, NOT_PENDING, SCHEDULED, Order
from exchange.core.reports import order_report, status_of
from exchange.core.venue import Venue
from exchange.protocol.messages import ExecType, OrderStatus, RejectReason


def report(
    venue: Venue,
    order: Order,
    exec_type: ExecType,
    status: OrderStatus,
    req_id: str | int | None = None,
    reason: RejectReason | None = None,
    text: str | None = None,
) -> None:
    """Emit ``order``'s execution report of ``exec_type`` (no fill)."""
    venue.seq += 1
    venue.events.append(
        order_report(
            order,
            exec_type,
            status,
            ts=venue.ts,
            seq=venue.seq,
            req_id=req_id,
            reason=reason,
            text=text,
        )
    )


def rest(venue: Venue, order: Order) -> None:
    """Put a live remainder in the book and account for its exposure."""
    book = order.book
    book.add(order)
    venue.touched_books[book.symbol] = book
    account = order.account
    holding = account.holdings[book.symbol]
    if order.is_buy:  # Holding.expose and _index, inline: every passive order comes here
        holding.open_buy_qty += order.leaves
        holding.open_buy_value += order.leaves * order.price
    else:
        holding.open_sell_qty += order.leaves
        holding.open_sell_value += order.leaves * order.price
    if order.order_id not in account.orders:
        account.orders[order.order_id] = order
        if order.client_order_id is not None:
            account.by_client_id[order.client_order_id] = order


def unrest(venue: Venue, order: Order, purge: bool = False) -> None:
    """Take a resting order out of the book and out of its holding's exposure; a pending
    order (armed, scheduled or firing) out of its trigger book or schedule instead."""
    book = order.book
    if order.pending:
        price = order.reserve
        unpend(venue, order)
    else:
        book.remove(order, purge)
        venue.touched_books[book.symbol] = book
        price = order.price
    order.account.holdings[book.symbol].expose(order.is_buy, -order.leaves, price)


def hold(venue: Venue, order: Order) -> None:
    """Index a pending order as live and reserve its exposure at ``order.reserve`` ticks (the
    caller arms or schedules it)."""
    order.account.holding(order.book).expose(order.is_buy, order.leaves, order.reserve)
    _index(order)


def _index(order: Order) -> None:
    """List ``order`` among its account's live orders (by id and client id), once."""
    account = order.account
    if order.order_id not in account.orders:
        account.orders[order.order_id] = order
        if order.client_order_id is not None:
            account.by_client_id[order.client_order_id] = order


def unpend(venue: Venue, order: Order) -> None:
    """Take a pending order out of its trigger book, schedule or firing queue (its exposure
    and indexes stay: see ``unrest``); it is then neither pending nor in the book."""
    pending = order.pending
    if pending == ARMED:
        venue.triggers[order.book.symbol].remove(order)
        venue.armed -= 1
    elif pending == FIRING:
        venue.armed -= 1  # the firing queue skips it: it is no longer FIRING
    elif pending == SCHEDULED:
        heap = venue.activations
        heap[:] = [entry for entry in heap if entry[2] is not order]
        heapify(heap)
    order.pending = NOT_PENDING


def shrink(venue: Venue, order: Order, allowed: int) -> None:
    """Cut a live reduce-only order's ``leaves`` to ``allowed`` (what the position still lets
    it reduce): a ``replaced`` report with the lower ``qty``, or, when nothing is left,
    ``expired`` with reason ``reduce_only``."""
    if allowed <= 0:
        unrest(venue, order)
        unlist(order)
        order.leaves = 0
        text = "reduce_only: no position left to reduce"
        report(venue, order, "expired", "expired", None, "reduce_only", text)
        remember_done(venue, order, "expired")
        return
    cut = order.leaves - allowed
    if cut <= 0:
        return
    holding = order.account.holdings[order.book.symbol]
    if order.pending:
        price = order.reserve
        order.leaves -= cut
    else:
        price = order.price
        order.book.reduce(order, cut)
        venue.touched_books[order.book.symbol] = order.book
    holding.expose(order.is_buy, -cut, price)
    order.qty -= cut
    text = f"reduce_only: qty cut to {order.qty} as the position shrank"
    report(venue, order, "replaced", status_of(order), None, None, text)


def unlist(order: Order) -> None:
    """Forget a finished order in its account's live-order indexes."""
    account = order.account
    if account.orders.pop(order.order_id, None) is not None and order.client_order_id is not None:
        account.by_client_id.pop(order.client_order_id, None)


def remember_done(venue: Venue, order: Order, status: OrderStatus) -> None:
    """Record a finished order in the done-order memory."""
    venue.done.remember(order.order_id, order.account.name, status, order.client_order_id)


def cancel_resting(
    venue: Venue,
    order: Order,
    req_id: str | int | None,
    reason: RejectReason | None,
    text: str | None,
) -> None:
    """Cancel a live order: out of the book and the indexes, ``canceled`` report, remembered."""
    unrest(venue, order)
    unlist(order)
    order.leaves = 0
    report(venue, order, "canceled", "canceled", req_id, reason, text)
    remember_done(venue, order, "canceled")


def expire(venue: Venue, order: Order, reason: RejectReason | None, text: str | None) -> None:
    """End an order that never rested (or whose remainder may not): ``expired`` report."""
    order.leaves = 0
    report(venue, order, "expired", "expired", None, reason, text)
    remember_done(venue, order, "expired")
