"""The order book of one symbol: resting orders in price levels, FIFO within a level.

Prices are integer ticks. Each side is a dict ``price -> Level``; a heap per side (lazy:
entries of vanished levels are skipped) finds the next best price when the best level empties.
A level keeps its orders in a deque; a cancelled order is only flagged dead and skipped when
it reaches the front, which makes cancels O(1). The level's ``qty`` counts live quantity only.

The book records which levels changed since ``take_changes`` was last called, so the core can
publish one L2 delta per command.
"""

from __future__ import annotations

from collections import deque
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Final

from exchange.core.instruments import Instrument
from exchange.protocol.messages import OrderType, SelfTradePrevention, TimeInForce

if TYPE_CHECKING:
    from exchange.core.accounts import AccountState

OPEN: Final = "open"
HALTED: Final = "halted"
AUCTION: Final = "auction"
"""Trading states of a book (``OrderBook.state``, ``exchange.core.status``)."""
NO_BID = 0
NO_ASK = 0

NOT_PENDING = 0
"""``Order.pending``: the order is in the book (``live``) or done."""
ARMED = 1
"""``Order.pending``: a conditional order waiting in its symbol's trigger book."""
SCHEDULED = 2
"""``Order.pending``: an ``activate_at`` order waiting for its time (``Venue.activations``)."""
FIRING = 3
"""``Order.pending``: condition met, queued to fire within the current command."""


class Order:
    """A live (or just finished) order. Mutable; owned by the core, never sent as is.

    A plain slotted class rather than a msgspec Struct: when the core is compiled with mypyc
    it becomes a native class whose fields are read and written without attribute lookups.
    """

    __slots__ = (
        "account",
        "activate_at",
        "book",
        "client_order_id",
        "cum_cost",
        "cum_qty",
        "display",
        "expire_at",
        "is_buy",
        "leaves",
        "liquidation",
        "live",
        "order_id",
        "order_type",
        "pending",
        "post_only",
        "price",
        "qty",
        "reduce_only",
        "reserve",
        "shown",
        "stp",
        "tif",
        "trigger",
        "triggered",
    )

    def __init__(
        self,
        order_id: int,
        account: AccountState,
        book: OrderBook,
        is_buy: bool,
        price: int,  # ticks; 0 for a market order
        qty: int,
        leaves: int,
        cum_qty: int = 0,
        cum_cost: int = 0,  # sum of fill ticks x lots, for avg_px
        client_order_id: str | None = None,
        order_type: OrderType = "limit",
        tif: TimeInForce = "gtc",
        post_only: bool = False,
        stp: SelfTradePrevention = "expire_taker",
        live: bool = False,  # resting in the book
        liquidation: bool = False,
        expire_at: int | None = None,  # tif gtd: ns since the epoch
        trigger: int = 0,  # ticks: a conditional order's trigger price; 0 for none
        activate_at: int | None = None,  # ns since the epoch: a scheduled order
        reduce_only: bool = False,
        triggered: bool = False,  # a conditional or scheduled order that has fired
        pending: int = NOT_PENDING,  # ARMED / SCHEDULED / FIRING: alive but not in the book
        reserve: int = 0,  # ticks its open exposure is valued at while pending
        display: int = 0,  # an iceberg's display_qty; 0: not an iceberg
        shown: int = 0,  # an iceberg's slice on the book now (the rest of leaves is hidden)
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.book = book
        self.is_buy = is_buy
        self.price = price
        self.qty = qty
        self.leaves = leaves
        self.cum_qty = cum_qty
        self.cum_cost = cum_cost
        self.client_order_id = client_order_id
        self.order_type = order_type
        self.tif = tif
        self.post_only = post_only
        self.stp = stp
        self.live = live
        self.liquidation = liquidation
        self.expire_at = expire_at
        self.trigger = trigger
        self.activate_at = activate_at
        self.reduce_only = reduce_only
        self.triggered = triggered
        self.pending = pending
        self.reserve = reserve
        self.display = display
        self.shown = shown

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (
            f"Order({self.order_id} {self.account.name} {self.book.symbol} {side} "
            f"{self.leaves}/{self.qty} @{self.price} live={self.live})"
        )


class Level:
    """Orders resting at one price; ``qty`` is the live quantity, ``dead`` flagged entries."""

    __slots__ = ("dead", "orders", "qty")

    def __init__(self) -> None:
        self.qty = 0
        self.dead = 0
        self.orders: deque[Order] = deque()

    def compact(self) -> None:
        """Drop dead entries (keeps FIFO order of the live ones)."""
        self.orders = deque(o for o in self.orders if o.live)
        self.dead = 0


class OrderBook:
    """Both sides of one symbol's book plus its last trade and last published BBO."""

    __slots__ = (
        "ask_heap",
        "asks",
        "best_ask",
        "best_bid",
        "bid_heap",
        "bids",
        "changed_asks",
        "changed_bids",
        "instrument",
        "last_bbo",
        "last_trade",
        "mark",
        "state",
        "symbol",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_heap: list[int] = []  # negated prices
        self.ask_heap: list[int] = []
        self.best_bid = NO_BID
        self.best_ask = NO_ASK
        self.last_trade = 0  # ticks, 0 = none yet
        self.changed_bids: set[int] = set()
        self.changed_asks: set[int] = set()
        self.last_bbo: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.mark: float = float(instrument.reference_ticks)
        self.state = OPEN
        """Trading status: ``open``, ``halted`` or ``auction`` (``exchange.core.status``)."""

    # ------------------------------------------------------------------ resting orders

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its price level (it must not cross)."""
        price = order.price
        if order.is_buy:
            level = self.bids.get(price)
            if level is None:
                level = self.bids[price] = Level()
                heappush(self.bid_heap, -price)
                if price > self.best_bid:
                    self.best_bid = price
            self.changed_bids.add(price)
        else:
            level = self.asks.get(price)
            if level is None:
                level = self.asks[price] = Level()
                heappush(self.ask_heap, price)
                if self.best_ask == NO_ASK or price < self.best_ask:
                    self.best_ask = price
            self.changed_asks.add(price)
        level.orders.append(order)
        if order.display:
            if not order.shown:  # a new slice (a restored order keeps its own)
                order.shown = min(order.display, order.leaves)
            level.qty += order.shown
        else:
            level.qty += order.leaves
        order.live = True

    def remove(self, order: Order, purge: bool = False) -> None:
        """Take a resting order out of the book.

        By default the queue entry is only flagged dead (O(1)). Pass ``purge=True`` when the
        same order object will be added again (an amend that loses priority), so the stale
        entry cannot come back to life at its old queue position.
        """
        price = order.price
        side = self.bids if order.is_buy else self.asks
        level = side[price]
        order.live = False
        level.qty -= order.shown if order.display else order.leaves
        if order.is_buy:
            self.changed_bids.add(price)
        else:
            self.changed_asks.add(price)
        if level.qty == 0:
            self.drop_level(order.is_buy, price)
            return
        if purge:
            level.orders.remove(order)
            return
        level.dead += 1
        if level.dead > 32 and level.dead > len(level.orders) // 2:
            level.compact()

    def reduce(self, order: Order, by: int) -> None:
        """Lower a resting order's leaves by ``by`` in place (keeps time priority); an
        iceberg loses hidden quantity first."""
        side = self.bids if order.is_buy else self.asks
        order.leaves -= by
        if order.display:
            shown = min(order.shown, order.leaves)
            side[order.price].qty -= order.shown - shown
            order.shown = shown
        else:
            side[order.price].qty -= by
        if order.is_buy:
            self.changed_bids.add(order.price)
        else:
            self.changed_asks.add(order.price)

    def drop_level(self, is_buy: bool, price: int) -> None:
        """Delete an empty level and move the best price on if it was the best."""
        if is_buy:
            del self.bids[price]
            if price == self.best_bid:
                heap, levels = self.bid_heap, self.bids
                while heap and -heap[0] not in levels:
                    heappop(heap)
                self.best_bid = -heap[0] if heap else NO_BID
            if len(self.bid_heap) > 64 and len(self.bid_heap) > 4 * len(self.bids):
                self.bid_heap = [-p for p in self.bids]
                heapify(self.bid_heap)
        else:
            del self.asks[price]
            if price == self.best_ask:
                heap, levels = self.ask_heap, self.asks
                while heap and heap[0] not in levels:
                    heappop(heap)
                self.best_ask = heap[0] if heap else NO_ASK
            if len(self.ask_heap) > 64 and len(self.ask_heap) > 4 * len(self.asks):
                self.ask_heap = list(self.asks)
                heapify(self.ask_heap)

    # ------------------------------------------------------------------ views

    def take_changes(self) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        """Changed levels since the last call as display ``(price, qty)``, best first."""
        to_price = self.instrument.to_price
        bids, asks = self.bids, self.asks
        changed_bids: list[tuple[float, int]] = []
        changed_asks: list[tuple[float, int]] = []
        changed = self.changed_bids
        if len(changed) == 1:
            price = changed.pop()
            level = bids.get(price)
            changed_bids.append((to_price(price), level.qty if level else 0))
        elif changed:
            for price in sorted(changed, reverse=True):
                level = bids.get(price)
                changed_bids.append((to_price(price), level.qty if level else 0))
            self.changed_bids = set()
        changed = self.changed_asks
        if len(changed) == 1:
            price = changed.pop()
            level = asks.get(price)
            changed_asks.append((to_price(price), level.qty if level else 0))
        elif changed:
            for price in sorted(changed):
                level = asks.get(price)
                changed_asks.append((to_price(price), level.qty if level else 0))
            self.changed_asks = set()
        return changed_bids, changed_asks

    def depth(
        self, depth: int | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Top ``depth`` levels (all when None) of each side as ``(ticks, qty)``, best first."""
        bid_prices = sorted(self.bids, reverse=True)
        ask_prices = sorted(self.asks)
        if depth is not None:
            bid_prices = bid_prices[:depth]
            ask_prices = ask_prices[:depth]
        return (
            [(p, self.bids[p].qty) for p in bid_prices],
            [(p, self.asks[p].qty) for p in ask_prices],
        )

    def iter_orders(self, is_buy: bool, prices: list[int]) -> list[Order]:
        """Live orders at the given prices of one side, in matching order."""
        side = self.bids if is_buy else self.asks
        return [o for p in prices if p in side for o in side[p].orders if o.live]

    def bbo(self) -> tuple[int, int, int, int]:
        """``(bid, bid_qty, ask, ask_qty)`` in ticks; 0 for a missing side."""
        bid, ask = self.best_bid, self.best_ask
        return (
            bid,
            self.bids[bid].qty if bid else 0,
            ask,
            self.asks[ask].qty if ask else 0,
        )

    def compute_mark(self) -> float:
        """Mark price in ticks: mid when both sides exist, else last trade, else reference."""
        if self.best_bid and self.best_ask:
            return (self.best_bid + self.best_ask) / 2
        if self.last_trade:
            return float(self.last_trade)
        return float(self.instrument.reference_ticks)

    def band_reference(self) -> int:
        """Ticks the price band is centred on: the last trade, else the reference price."""
        return self.last_trade or self.instrument.reference_ticks
