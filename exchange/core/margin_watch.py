"""Which accounts a mark move may have pushed below maintenance margin.

Checking every position holder on every mark move costs O(holders) per book change. Instead,
each time an account is evaluated exactly (cushion = equity - maintenance margin >= 0), its
cushion is split evenly across the n symbols it holds, and for each symbol we record the band
of marks within which that symbol alone cannot consume its share:

    width = cushion / (n * |qty| * tick_value * (1 + mm_rate))

While every mark stays inside its band the account's cushion stays >= 0, so it needs no
re-check. When a mark leaves a band, ``breached`` names the account and the caller evaluates it
exactly again (and re-arms it). Entries are versioned; stale ones are skipped lazily.

Only the side of a band that can hurt is recorded. With the quantity fixed, a symbol's part of
the cushion is linear in its mark, ``qty x mark x tick_value x (1 - sign(qty) x mm_rate)``: a
long position loses cushion only as the mark falls (and, with a maintenance rate above 1, as
it rises too: then both sides are kept), a short one only as it rises. A long position's lower bound
at or below zero is never reached (marks are positive), so it is not recorded at all.

This is only a filter: the decision to liquidate is always made on the exact cushion, and the
caller orders the accounts it liquidates deterministically, so the filter's state never changes
observable behaviour (it is rebuilt, not restored, from a snapshot).
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING

from exchange.core.instruments import RATE_SCALE

if TYPE_CHECKING:
    from exchange.core.accounts import AccountState

_SAFETY = 1.0 - 1e-9  # shrink bands a hair so float rounding can never hide a breach


class MarginWatch:
    """Per-symbol heaps of lower and upper mark bounds of armed accounts."""

    __slots__ = ("_lower", "_upper", "_versions")

    def __init__(self) -> None:
        self._lower: dict[str, list[tuple[float, int, str]]] = {}  # (-bound, version, account)
        self._upper: dict[str, list[tuple[float, int, str]]] = {}  # (bound, version, account)
        self._versions: dict[str, int] = {}

    def arm(self, account: AccountState, cushion: float) -> None:
        """Record bands for ``account`` after an exact evaluation found ``cushion >= 0``."""
        name = account.name
        version = self._versions.get(name, 0) + 1
        self._versions[name] = version
        held = [h for h in account.holdings.values() if h.qty]
        if not held:
            return
        share = cushion * _SAFETY / len(held)
        for holding in held:
            book = holding.book
            instrument = book.instrument
            long = holding.qty > 0
            qty = holding.qty if long else -holding.qty
            mm_rate = instrument.mm_rate / RATE_SCALE
            sensitivity = qty * instrument.tick_value * (1.0 + mm_rate)
            width = share / sensitivity
            mark = book.mark
            symbol = book.symbol
            lower = self._lower.get(symbol)
            if lower is None:
                lower = self._lower[symbol] = []
                self._upper[symbol] = []
            upper = self._upper[symbol]
            if long and mark > width:
                heappush(lower, (width - mark, version, name))
                if len(lower) > 64 and len(lower) > 4 * len(self._versions):
                    self._lower[symbol] = self._prune(lower)
            if not long or mm_rate > 1.0:
                heappush(upper, (mark + width, version, name))
                if len(upper) > 64 and len(upper) > 4 * len(self._versions):
                    self._upper[symbol] = self._prune(upper)

    def disarm(self, account: AccountState) -> None:
        """Forget ``account``'s bands (it is being liquidated or is flat)."""
        self._versions[account.name] = self._versions.get(account.name, 0) + 1

    def breached(self, symbol: str, mark: float) -> list[str]:
        """Accounts whose band on ``symbol`` no longer contains ``mark`` (each named once)."""
        found: list[str] = []
        versions = self._versions
        lower = self._lower.get(symbol)
        if lower is None:
            return found
        while lower and -lower[0][0] > mark:
            _, version, name = heappop(lower)
            if versions.get(name) == version:
                found.append(name)
        upper = self._upper[symbol]
        while upper and upper[0][0] < mark:
            _, version, name = heappop(upper)
            if versions.get(name) == version and name not in found:
                found.append(name)
        return found

    def _prune(self, heap: list[tuple[float, int, str]]) -> list[tuple[float, int, str]]:
        versions = self._versions
        kept = [entry for entry in heap if versions.get(entry[2]) == entry[1]]
        heapify(kept)
        return kept
