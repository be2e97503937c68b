"""The per-instrument state behind trading status (``exchange.core.status``): a plain record
the ``Venue`` holds for every symbol (its own module so that the venue can build it without
importing the status stage)."""

from __future__ import annotations

from collections import deque

from exchange.core.book import OrderBook
from exchange.core.instruments import rate_to_int
from exchange.protocol.messages import StatusReason

NS = 1_000_000_000


class Control:
    """One instrument's status beyond ``OrderBook.state``: why, until when, what follows, the
    auction messages' pacing and the circuit breaker's window."""

    __slots__ = (
        "breaker_auction_ns",
        "breaker_halt_ns",
        "breaker_move",
        "breaker_window_ns",
        "highs",
        "info_due",
        "info_sent",
        "lows",
        "reason",
        "reopen_auction_ns",
        "until",
    )

    def __init__(self, book: OrderBook) -> None:
        self.reason: StatusReason = "admin"
        self.until: int | None = None
        """When the halt or auction ends by itself (ns), None: when an operator says so."""
        self.reopen_auction_ns = 0
        """A halt's reopening auction length (0: straight to open)."""
        self.info_sent = 0
        """When the last ``auction`` event of this symbol went out (ns)."""
        self.info_due: int | None = None
        """When a postponed ``auction`` event is due (ns), None: none waiting."""
        breaker = book.instrument.spec.circuit_breaker
        self.breaker_move = rate_to_int(breaker.move) if breaker is not None else 0
        self.breaker_window_ns = round(breaker.window_s * NS) if breaker is not None else 0
        self.breaker_halt_ns = round(breaker.halt_s * NS) if breaker is not None else 0
        self.breaker_auction_ns = round(breaker.auction_s * NS) if breaker is not None else 0
        self.lows: deque[tuple[int, int]] = deque()
        """(ts, ticks) of the window's trades with no lower price after them (the front is
        the window's lowest)."""
        self.highs: deque[tuple[int, int]] = deque()
        """The same with no higher price after them (the front is the highest)."""
