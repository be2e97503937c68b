"""Conditional, scheduled and reduce-only orders (PROTOCOL §3.1): the stage that arms orders in
their symbol's trigger book (``exchange.core.trigger_book``), fires them when the last trade
reaches their trigger, activates ``activate_at`` orders, and keeps reduce-only orders within the
position they reduce.

Waiting orders ("pending": armed, scheduled, or queued to fire) are live orders of their
account (listed, cancellable, amendable, counted by ``max_open_orders``) that are not in the
book; their exposure is reserved at ``Order.reserve`` ticks (``risk.reserve_price``).

Firing order. After anything that trades, ``run(venue, start)`` walks the fills appended to the
command's events since ``start``, one print at a time: each print pops the orders it meets from
the trigger book (ties, i.e. orders met by the same print, by order id = acceptance) onto the
back of the firing queue; then the queue's head fires, its own fills are walked the same way
(their orders join the back of the queue), and so on until the queue is empty. So orders fire
in the order their conditions were met, and a cascade is a loop, never a recursion.

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from heapq import heappush

from exchange.core.book import ARMED, FIRING, NOT_PENDING, OPEN, SCHEDULED, Order
from exchange.core.matching import execute
from exchange.core.orders import expire, hold, report, rest, shrink, unlist, unrest
from exchange.core.reports import status_of
from exchange.core.risk import (
    Refusal,
    band,
    check_fire,
    margin_allows,
    reducible,
    reserve_price,
    worst_position,
    would_cross,
)
from exchange.core.trigger_book import is_met
from exchange.core.venue import Venue
from exchange.protocol.messages import Fill


def accept(venue: Venue, order: Order) -> None:
    """A just accepted conditional or scheduled order (its ``new`` report sent, ``reserve``
    set): index it, reserve its exposure, then schedule it (``activate_at``) or arm it (a
    trigger already met queues it to fire; the caller then calls ``run``)."""
    hold(venue, order)
    if order.activate_at is not None:
        order.pending = SCHEDULED
        heappush(venue.activations, (order.activate_at, order.order_id, order))
    else:
        arm(venue, order)


def arm(venue: Venue, order: Order) -> None:
    """Put a held conditional order in its trigger book, or straight into the firing queue
    when the last trade (the reference price before any) already meets its trigger."""
    book = order.book
    venue.armed += 1
    if is_met(order, book.band_reference()):
        order.pending = FIRING
        venue.firing.append(order)
    else:
        order.pending = ARMED
        venue.triggers[book.symbol].add(order)


def run(venue: Venue, start: int) -> None:
    """Fire what the trades among ``venue.events[start:]`` trigger, and what those orders'
    own trades trigger, until nothing is left to fire; cut reduce-only orders whose position
    those trades shrank. Call after anything that may have traded or queued an order."""
    events = venue.events
    firing = venue.firing
    index = start
    while True:
        count = len(events)
        while index < count:
            event = events[index]
            index += 1
            if type(event) is Fill:
                _after_fill(venue, event)
        if not firing:
            if index == len(events):
                return
            continue
        order = firing.popleft()
        if order.pending != FIRING:
            continue  # cancelled (or cut to nothing) while it waited in the queue
        order.pending = NOT_PENDING
        venue.armed -= 1
        _release(order)
        fire(venue, order)


def _after_fill(venue: Venue, fill: Fill) -> None:
    book = venue.books[fill.symbol]
    if venue.armed:
        triggers = venue.triggers[fill.symbol]
        if triggers.orders:
            last = book.instrument.to_ticks(fill.price) or book.last_trade
            met = triggers.pop_met(last)
            if met:
                firing = venue.firing
                for order in met:
                    order.pending = FIRING
                    firing.append(order)
    watched = venue.reduce_only
    if watched:
        for name in (fill.buy_account, fill.sell_account):
            if name in watched:
                enforce_reduce_only(venue, name, fill.symbol)


def recheck(venue: Venue, symbol: str) -> None:
    """Fire the armed orders of ``symbol`` that its current "last" already meets, and what
    they trade in turn. For whatever moves "last" without a trade: before the first trade it
    is the reference price, which a news shock moves (``operators.publish_news``)."""
    book = venue.books[symbol]
    if book.state != OPEN:  # halted or in auction: stops wait for the reopen's uncross
        return
    triggers = venue.triggers[symbol]
    if triggers.orders:
        firing = venue.firing
        for order in triggers.pop_met(book.band_reference()):
            order.pending = FIRING
            firing.append(order)
    if venue.firing:
        run(venue, len(venue.events))


def enforce_reduce_only(venue: Venue, name: str, symbol: str) -> None:
    """Cut each live reduce-only order of account ``name`` on ``symbol`` to what its position
    still lets it reduce (``orders.shrink``); forget the account when it has none left."""
    account = venue.accounts[name]
    holding = account.holdings.get(symbol)
    found = False
    for order in list(account.orders.values()):
        if not order.reduce_only:
            continue
        found = True
        if holding is not None and order.book.symbol == symbol:
            allowed = reducible(holding, order.is_buy)
            if allowed < order.leaves:
                shrink(venue, order, allowed)
    if not found:
        del venue.reduce_only[name]


def watch_reduce_only(venue: Venue, order: Order) -> None:
    """Remember that ``order``'s account has a live reduce-only order."""
    venue.reduce_only[order.account.name] = 1


def _release(order: Order) -> None:
    """Give back the exposure a pending order reserved (its ``leaves`` at ``reserve``)."""
    holding = order.account.holdings[order.book.symbol]
    holding.expose(order.is_buy, -order.leaves, order.reserve)


def fire(venue: Venue, order: Order) -> None:
    """A pending order whose trigger was met (or whose ``activate_at`` came), already out of
    its trigger book or schedule with its reservation released: ``triggered`` report, then
    the reduce-only rule and the pre-trade checks again (a failure: ``expired`` with the
    rule's reason), then it enters the book as the order it became: ``market`` (IOC, up to
    the band) for ``stop`` / ``take_profit`` / a market order, ``limit`` at ``price``
    otherwise."""
    order.triggered = True
    text = None
    allowed = -1
    if order.reduce_only:
        allowed = reducible(order.account.holding(order.book), order.is_buy)
        if 0 < allowed < order.leaves:
            cut = order.leaves - allowed
            order.leaves = allowed
            order.qty -= cut
            text = f"reduce_only: qty cut to {order.qty}, the position it reduces"
    report(venue, order, "triggered", status_of(order), None, None, text)
    if allowed == 0:
        unlist(order)
        expire(venue, order, "reduce_only", "reduce_only: no position left to reduce")
        return
    book = order.book
    limits = band(book)
    refusal = check_fire(order, limits)
    if refusal is not None:
        unlist(order)
        expire(venue, order, refusal[0], refusal[1])
        return
    price = order.price
    is_buy = order.is_buy
    if not price:
        unlist(order)
        execute(venue, order, limits[1] if is_buy else limits[0], False)
        return
    rests = order.tif == "gtc" or order.tif == "gtd"
    if not rests:
        unlist(order)
        execute(venue, order, price, False)
    elif not would_cross(book, is_buy, price):
        rest(venue, order)
    else:
        execute(venue, order, price, True)


def activate(venue: Venue, order: Order) -> None:
    """A scheduled order whose ``activate_at`` came (the caller popped it from the schedule):
    it fires (``fire``), and whatever it trades fires in turn (``run``)."""
    start = len(venue.events)
    order.pending = NOT_PENDING
    _release(order)
    fire(venue, order)
    run(venue, start)


def amend_pending(
    venue: Venue,
    order: Order,
    new_qty: int,
    new_price: int,
    new_trigger: int,
    req_id: str | int | None,
) -> Refusal | None:
    """Amend a waiting order to ``new_qty`` lots, limit ``new_price`` and ``new_trigger``
    ticks (valid numbers; prices 0 where the type has none). Returns the refusal, or None
    once it is amended: ``replaced`` report, re-armed (a trigger now met queues it to fire:
    the caller calls ``run``) or re-scheduled. A waiting order has no fills, so ``qty`` is
    also what is left."""
    book = order.book
    instrument = book.instrument
    if new_qty > instrument.max_order_qty:
        return "max_order_qty", "qty above max_order_qty"
    holding = order.account.holding(book)
    is_buy = order.is_buy
    if order.reduce_only and new_qty > reducible(holding, is_buy):
        return "reduce_only", "reduce_only: qty above the position it reduces"
    if new_price and new_price != order.price:
        low, high = instrument.band_limits(new_trigger or book.band_reference())
        if new_price < low or new_price > high:
            return "price_band", "price outside the band around the trigger price"
    new_reserve = reserve_price(book, is_buy, new_price, new_trigger)
    added = new_qty - order.leaves
    if added > 0 and worst_position(holding, is_buy, added) > instrument.max_position:
        return "max_position", "position limit"
    value_delta = new_qty * new_reserve - order.leaves * order.reserve
    if value_delta > 0 and not margin_allows(order.account, holding, is_buy, value_delta):
        return "insufficient_margin", "initial margin would exceed equity"
    scheduled = order.pending == SCHEDULED
    unrest(venue, order)
    order.qty = new_qty
    order.leaves = new_qty - order.cum_qty
    order.price = new_price
    order.trigger = new_trigger
    order.reserve = new_reserve
    hold(venue, order)
    report(venue, order, "replaced", status_of(order), req_id)
    if scheduled:
        order.pending = SCHEDULED
        heappush(venue.activations, (order.activate_at or 0, order.order_id, order))
    else:
        arm(venue, order)
    return None


def pending_orders(venue: Venue) -> list[Order]:
    """Every live order that is not in a book, by order id (for snapshots and invariants)."""
    found = [
        order
        for account in venue.accounts.values()
        for order in account.orders.values()
        if order.pending
    ]
    found.sort(key=lambda order: order.order_id)
    return found


def restore_pending(venue: Venue, order: Order) -> None:
    """Put a pending order from a snapshot back: held, and armed or scheduled as it was."""
    pending = order.pending
    hold(venue, order)
    if pending == SCHEDULED:
        heappush(venue.activations, (order.activate_at or 0, order.order_id, order))
    else:
        order.pending = ARMED
        venue.armed += 1
        venue.triggers[order.book.symbol].add(order)
    if order.reduce_only:
        watch_reduce_only(venue, order)
