"""The trigger book of one symbol: its armed conditional orders (``stop``, ``stop_limit``,
``take_profit``, ``take_profit_limit``), ordered by trigger price then acceptance (order id).

Two sorted lists of keys: ``rising`` holds the orders that fire when the last trade rises to
their trigger (a stop buy, a take-profit sell: last >= trigger), lowest trigger first;
``falling`` those that fire when it falls to it (a stop sell, a take-profit buy: last <=
trigger), highest trigger first. A print at ``last`` pops the met orders from the front of
each list, so checking costs O(fired + log n); adding and removing an order cost O(log n).

A pure data structure: it changes no other state and emits nothing (``exchange.core.triggers``
is the stage that arms and fires orders).
"""

from __future__ import annotations

from sortedcontainers import SortedList

from exchange.core.book import Order

STOP_TYPES = ("stop", "stop_limit")
TAKE_PROFIT_TYPES = ("take_profit", "take_profit_limit")
CONDITIONAL_TYPES = ("stop", "stop_limit", "take_profit", "take_profit_limit")
LIMIT_CONDITIONAL_TYPES = ("stop_limit", "take_profit_limit")


def rises(order: Order) -> bool:
    """Whether ``order`` fires when the last trade reaches its trigger from below (last >=
    trigger: a stop buy, a take-profit sell); otherwise from above (last <= trigger)."""
    return (order.order_type in STOP_TYPES) == order.is_buy


def is_met(order: Order, last: int) -> bool:
    """Whether ``order``'s trigger condition holds with the last trade at ``last`` ticks."""
    if rises(order):
        return last >= order.trigger
    return last <= order.trigger


class TriggerBook:
    """Armed conditional orders of one symbol (see the module docstring)."""

    __slots__ = ("falling", "orders", "rising")

    def __init__(self) -> None:
        self.rising: SortedList = SortedList()  # (trigger, order_id)
        self.falling: SortedList = SortedList()  # (-trigger, order_id)
        self.orders: dict[int, Order] = {}

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, order: Order) -> None:
        """Arm ``order`` (its ``trigger`` must be set and it must not be in the book yet)."""
        if rises(order):
            self.rising.add((order.trigger, order.order_id))
        else:
            self.falling.add((-order.trigger, order.order_id))
        self.orders[order.order_id] = order

    def remove(self, order: Order) -> None:
        """Disarm ``order`` (with the trigger it was armed at); no-op if it is not here."""
        if self.orders.pop(order.order_id, None) is None:
            return
        if rises(order):
            self.rising.discard((order.trigger, order.order_id))
        else:
            self.falling.discard((-order.trigger, order.order_id))

    def pop_met(self, last: int) -> list[Order]:
        """Disarm and return every order whose condition holds at ``last``, by order id
        (they are all met by the same print: ties go by acceptance)."""
        met: list[Order] = []
        orders = self.orders
        rising = self.rising
        while rising and rising[0][0] <= last:
            met.append(orders.pop(rising.pop(0)[1]))
        falling = self.falling
        while falling and -falling[0][0] >= last:
            met.append(orders.pop(falling.pop(0)[1]))
        if len(met) > 1:
            met.sort(key=_order_id)
        return met

    def keys(self) -> list[tuple[bool, int, int]]:
        """``(rises, trigger, order_id)`` of every entry (for invariants)."""
        return [(True, t, i) for t, i in self.rising] + [(False, -t, i) for t, i in self.falling]


def _order_id(order: Order) -> int:
    return order.order_id
