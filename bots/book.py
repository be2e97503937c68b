"""The local L2 book a strategy reads (``ctx.book()``), re-exported by ``bots.api``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

Side = Literal["buy", "sell"]


class Level(NamedTuple):
    """One price level of the book: price (display units) and total quantity (lots)."""

    price: float
    qty: int


class Book:
    """The local L2 book of one symbol, rebuilt by the runner from snapshot + updates.

    ``bids`` and ``asks`` are best first. Strategies only read it; ``reset`` and ``apply``
    are for the runner (and for tests that build a book by hand).
    """

    __slots__ = ("_asks", "_bids", "_sorted", "seq", "symbol", "ts")

    def __init__(
        self,
        symbol: str,
        bids: Iterable[tuple[float, int]] = (),
        asks: Iterable[tuple[float, int]] = (),
        seq: int = 0,
        ts: int = 0,
    ) -> None:
        self.symbol = symbol
        self.seq = seq
        self.ts = ts
        self._bids: dict[float, int] = {}
        self._asks: dict[float, int] = {}
        self._sorted: tuple[list[Level], list[Level]] | None = None
        self.reset(bids, asks, seq, ts)

    def reset(
        self,
        bids: Iterable[tuple[float, int]],
        asks: Iterable[tuple[float, int]],
        seq: int,
        ts: int,
    ) -> None:
        """Replace the whole book (a snapshot)."""
        self._bids = {float(p): int(q) for p, q in bids if q > 0}
        self._asks = {float(p): int(q) for p, q in asks if q > 0}
        self.seq, self.ts, self._sorted = seq, ts, None

    def apply(
        self,
        bids: Iterable[tuple[float, int]],
        asks: Iterable[tuple[float, int]],
        seq: int,
        ts: int,
        depth: int | None = None,
    ) -> None:
        """Apply changed levels (absolute qty, 0 removes); keep at most ``depth`` per side."""
        for side, changes in ((self._bids, bids), (self._asks, asks)):
            for price, qty in changes:
                if qty > 0:
                    side[float(price)] = int(qty)
                else:
                    side.pop(float(price), None)
        self.seq, self.ts, self._sorted = seq, ts, None
        if depth is not None and (len(self._bids) > depth or len(self._asks) > depth):
            bids, asks = self._levels()
            self._bids = dict(bids[:depth])
            self._asks = dict(asks[:depth])
            self._sorted = None

    def _levels(self) -> tuple[list[Level], list[Level]]:
        if self._sorted is None:
            self._sorted = (
                [Level(p, self._bids[p]) for p in sorted(self._bids, reverse=True)],
                [Level(p, self._asks[p]) for p in sorted(self._asks)],
            )
        return self._sorted

    @property
    def bids(self) -> list[Level]:
        """Bid levels, highest price first."""
        return self._levels()[0]

    @property
    def asks(self) -> list[Level]:
        """Ask levels, lowest price first."""
        return self._levels()[1]

    @property
    def best_bid(self) -> Level | None:
        bids = self.bids
        return bids[0] if bids else None

    @property
    def best_ask(self) -> Level | None:
        asks = self.asks
        return asks[0] if asks else None

    @property
    def mid(self) -> float | None:
        """Mid price when both sides exist, else None."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return (bid.price + ask.price) / 2

    @property
    def spread(self) -> float | None:
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return ask.price - bid.price

    def qty_at(self, side: Side, price: float) -> int:
        """Quantity resting at ``price`` on the bid (``buy``) or ask (``sell``) side."""
        return (self._bids if side == "buy" else self._asks).get(float(price), 0)

    def __repr__(self) -> str:
        return f"Book({self.symbol!r}, bids={self.bids[:3]}, asks={self.asks[:3]}, seq={self.seq})"
