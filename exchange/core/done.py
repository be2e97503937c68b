"""The done-order memory: the last N finished orders, so that a late cancel or amend of one's
own finished order is answered ``too_late`` (with its final status) rather than
``unknown_order``.

Bounded: at most ``limit`` orders (``CoreConfig.done_order_memory``, 100,000 by default), the
oldest forgotten first; with each, at most one client-order-id entry. Memory therefore does not
grow with the number of commands.
"""

from __future__ import annotations

from collections import deque

from exchange.protocol.messages import OrderStatus


class DoneOrders:
    """Finished orders by id (owner, final status, client order id), oldest first."""

    __slots__ = ("_by_cid", "_by_id", "_fifo", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_id: dict[int, tuple[str, OrderStatus, str | None]] = {}
        self._fifo: deque[int] = deque()
        self._by_cid: dict[tuple[str, str], int] = {}

    def remember(self, order_id: int, account: str, status: OrderStatus, cid: str | None) -> None:
        """Record a finished order; forgets the oldest beyond ``limit``."""
        self._by_id[order_id] = (account, status, cid)
        if cid is not None:
            self._by_cid[(account, cid)] = order_id
        fifo = self._fifo
        fifo.append(order_id)
        if len(fifo) > self.limit:
            old = fifo.popleft()
            entry = self._by_id.pop(old, None)
            if entry is not None and entry[2] is not None:
                key = (entry[0], entry[2])
                if self._by_cid.get(key) == old:
                    del self._by_cid[key]

    def get(self, order_id: int) -> tuple[str, OrderStatus, str | None] | None:
        """``(account, status, client_order_id)`` of a remembered order, else None."""
        return self._by_id.get(order_id)

    def id_for(self, account: str, cid: str) -> int | None:
        """The id of ``account``'s remembered order with client id ``cid``, else None."""
        return self._by_cid.get((account, cid))

    def entries(self) -> list[tuple[int, str, OrderStatus, str | None]]:
        """Every remembered order, oldest first: ``(order_id, account, status, cid)``."""
        out = []
        for order_id in self._fifo:
            entry = self._by_id.get(order_id)
            if entry is not None:
                out.append((order_id, entry[0], entry[1], entry[2]))
        return out
