"""Time in the core: the deadlines heap of GTD orders (``tif`` ``gtd``).

The core never reads a clock: time advances only with the input ``ts`` of the commands it
applies. ``AdvanceTime`` at ``ts`` expires every live GTD order whose ``expire_at <= ts``, in
(expire_at, order_id) order. Entries are not removed eagerly: an entry whose order is no
longer live (filled, canceled, expired) or whose ``expire_at`` changed is skipped when it
comes up, and the heap is compacted whenever it has grown to twice what was current at the
last compaction, so memory stays proportional to the live GTD orders.

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush

from exchange.core.book import Order
from exchange.core.orders import remember_done, report, unlist, unrest
from exchange.core.triggers import activate
from exchange.core.venue import Venue


def schedule(venue: Venue, order: Order) -> None:
    """Remember a resting GTD order's deadline (no-op for an order without ``expire_at``)."""
    expire_at = order.expire_at
    if expire_at is None:
        return
    heap = venue.deadlines
    heappush(heap, (expire_at, order.order_id, order))
    if len(heap) >= venue.deadlines_limit:
        heap[:] = [entry for entry in heap if _current(entry[2], entry[0])]
        heapify(heap)
        venue.deadlines_limit = max(_MIN_LIMIT, 2 * len(heap))


_MIN_LIMIT = 1024
"""The heap is never compacted below this size (compaction is O(n))."""


def _current(order: Order, expire_at: int) -> bool:
    """Whether a heap entry still stands for a live (resting or waiting) order's deadline."""
    return (order.live or order.pending != 0) and order.expire_at == expire_at


def next_deadline(venue: Venue) -> int | None:
    """The earliest ``expire_at`` of a live GTD order or ``activate_at`` of a scheduled order,
    or None (drops stale entries)."""
    heap = venue.deadlines
    activations = venue.activations
    first = activations[0][0] if activations else None
    while heap:
        expire_at, _, order = heap[0]
        if _current(order, expire_at):
            return expire_at if first is None or expire_at < first else first
        heappop(heap)
    return first


def expire_due(venue: Venue, ts: int) -> None:
    """End every live GTD order with ``expire_at <= ts``: out of the book and the indexes, one
    ``expired`` report with reason ``gtd_expired``, remembered as done; and activate every
    scheduled order with ``activate_at <= ts`` (``triggers.activate``). Both in time order,
    an expiry before an activation at the same time, then by order id."""
    heap = venue.deadlines
    activations = venue.activations
    while True:
        if activations and activations[0][0] <= ts:
            if not heap or heap[0][0] > activations[0][0]:
                activate(venue, heappop(activations)[2])
                continue
        elif not heap or heap[0][0] > ts:
            return
        expire_at, _, order = heappop(heap)
        if not _current(order, expire_at):
            continue
        unrest(venue, order)
        unlist(order)
        order.leaves = 0
        report(venue, order, "expired", "expired", None, "gtd_expired", "good-till-date reached")
        remember_done(venue, order, "expired")


def deadline_orders(venue: Venue) -> set[int]:
    """The ids of the live orders the heap holds a current entry for (for invariants)."""
    return {order_id for at, order_id, order in venue.deadlines if _current(order, at)}
