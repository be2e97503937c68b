"""L2 books rebuilt from the engine's snapshot and ``book_delta`` events, and depth-limited
views of them (pure: no I/O).

A side is a ``SortedDict`` keyed so that iteration order is best first: asks by price, bids by
negated price. A ``DepthView`` is what the subscribers of one (symbol, depth) pair have been
told: always the best ``depth`` levels of each side as of the view's ``seq``. Because it is
always a prefix of the book, a view is fully described by how many levels it holds and the
key of its worst level, and ``DepthView.advance`` turns one delta into the exact changes of
the prefix (changed levels inside it, levels entering it from below, levels pushed out of
it) in O(changes + entering + leaving + log n).
"""

from __future__ import annotations

from typing import TypeAlias

from sortedcontainers import SortedDict

from exchange.protocol.messages import PriceLevel

Side: TypeAlias = SortedDict
"""key (price for asks, -price for bids) -> qty, best first."""
Change = tuple[float, bool]
"""A level a delta touched: its key and whether it existed before the delta."""


class L2Book:
    """One symbol's aggregated book as of ``seq`` (the engine seq of the last change applied,
    or of the snapshot it was built from)."""

    __slots__ = ("asks", "bids", "seq", "symbol", "ts")

    def __init__(self, symbol: str, seq: int, ts: int) -> None:
        self.symbol = symbol
        self.bids: Side = SortedDict()
        self.asks: Side = SortedDict()
        self.seq = seq
        self.ts = ts

    @classmethod
    def from_levels(
        cls, symbol: str, bids: list[PriceLevel], asks: list[PriceLevel], seq: int, ts: int
    ) -> L2Book:
        """A book holding exactly ``bids`` and ``asks`` (display ``(price, qty)``)."""
        book = cls(symbol, seq, ts)
        book.bids = SortedDict({-float(p): int(q) for p, q in bids if q > 0})
        book.asks = SortedDict({float(p): int(q) for p, q in asks if q > 0})
        return book

    def apply(
        self, bids: list[PriceLevel], asks: list[PriceLevel], seq: int, ts: int
    ) -> tuple[list[Change], list[Change]]:
        """Apply one delta (absolute qty, 0 removes); returns the changes of each side as
        ``(key, existed_before)``."""
        bid_changes: list[Change] = []
        side = self.bids
        for price, qty in bids:
            key = -price
            if qty > 0:
                bid_changes.append((key, side.get(key) is not None))
                side[key] = qty
            else:
                bid_changes.append((key, side.pop(key, None) is not None))
        ask_changes: list[Change] = []
        side = self.asks
        for price, qty in asks:
            if qty > 0:
                ask_changes.append((price, side.get(price) is not None))
                side[price] = qty
            else:
                ask_changes.append((price, side.pop(price, None) is not None))
        self.seq = seq
        self.ts = ts
        return bid_changes, ask_changes

    def top(self, depth: int | None) -> tuple[list[PriceLevel], list[PriceLevel]]:
        """The best ``depth`` levels of each side (all when None), best first."""
        bids = self.bids
        asks = self.asks
        return (
            [(-key, bids[key]) for key in bids.islice(stop=depth)],
            [(key, asks[key]) for key in asks.islice(stop=depth)],
        )

    def best(self) -> tuple[float | None, int, float | None, int]:
        """``(bid, bid_qty, ask, ask_qty)``; None and 0 for an empty side."""
        bid: float | None = None
        ask: float | None = None
        bid_qty = ask_qty = 0
        if self.bids:
            key, bid_qty = self.bids.peekitem(0)
            bid = -key
        if self.asks:
            ask, ask_qty = self.asks.peekitem(0)
        return bid, bid_qty, ask, ask_qty


class _Edge:
    """What a view shows of one side: ``count`` best levels, the worst having key ``worst``."""

    __slots__ = ("count", "worst")

    def __init__(self, side: Side, depth: int) -> None:
        self.count = min(depth, len(side))
        self.worst: float = side.peekitem(self.count - 1)[0] if self.count else 0.0

    def advance(self, side: Side, changed: list[Change], depth: int) -> list[tuple[float, int]]:
        """Move the prefix to the book's new state; return its changes as (key, qty) sorted
        best first (qty 0: the level left the view). ``side`` already holds the new state and
        ``changed`` lists the levels the delta touched."""
        old_count = self.count
        old_worst = self.worst
        if old_count == depth:
            for key, _existed in changed:
                if key <= old_worst:
                    break
            else:  # every change is below a full view: nothing visible moved
                return []
        new_count = min(depth, len(side))
        new_worst = side.peekitem(new_count - 1)[0] if new_count else 0.0
        out: dict[float, int] = {}
        for key, existed in changed:
            if new_count and key <= new_worst and key in side:
                out[key] = side[key]
            elif existed and old_count and key <= old_worst:
                out[key] = 0  # it was shown (a level born and gone in one delta never was)
            else:
                out[key] = -1  # not shown before or after: keep the range scans off it
        if new_count and (not old_count or new_worst > old_worst):
            # Unchanged levels that entered the view from below.
            low = (old_worst, False) if old_count else (None, True)
            for key in side.irange(low[0], new_worst, inclusive=(low[1], True)):
                if key not in out:
                    out[key] = side[key]
        if old_count and (not new_count or new_worst < old_worst):
            # Unchanged levels pushed out of the view (they are still in the book).
            low = (new_worst, False) if new_count else (None, True)
            for key in side.irange(low[0], old_worst, inclusive=(low[1], True)):
                if key not in out:
                    out[key] = 0
        self.count = new_count
        self.worst = new_worst
        changes = [(key, qty) for key, qty in out.items() if qty >= 0]
        if len(changes) > 1:
            changes.sort()
        return changes


class DepthView:
    """The best ``depth`` levels of one book as last published, at ``seq``/``ts``."""

    __slots__ = ("_asks", "_bids", "depth", "seq", "ts")

    def __init__(self, book: L2Book, depth: int) -> None:
        self.depth = depth
        self.reset(book)

    def reset(self, book: L2Book) -> None:
        """Show ``book`` as it is now (after a snapshot or when the view is created)."""
        self._bids = _Edge(book.bids, self.depth)
        self._asks = _Edge(book.asks, self.depth)
        self.seq = book.seq
        self.ts = book.ts

    def advance(
        self, book: L2Book, bid_changes: list[Change], ask_changes: list[Change]
    ) -> tuple[list[PriceLevel], list[PriceLevel]] | None:
        """The view's changes after ``book`` applied a delta (``L2Book.apply``'s result), as
        display levels best first; None when nothing visible changed (``seq`` stays)."""
        bids = self._bids.advance(book.bids, bid_changes, self.depth) if bid_changes else []
        asks = self._asks.advance(book.asks, ask_changes, self.depth) if ask_changes else []
        if not bids and not asks:
            return None
        self.seq = book.seq
        self.ts = book.ts
        return [(-key, qty) for key, qty in bids], asks
