"""Public channel names and what one connection is subscribed to (pure: no I/O).

Names (PROTOCOL.md §4): ``book.S``, ``trades.S``, ``bbo.S`` for a symbol ``S`` or ``*`` (every
symbol), and ``liquidations``, ``accounts``, ``instruments``, ``status``, ``news``, ``rounds``. A
``Channel`` is the concrete pair ``(kind, symbol)`` (symbol None for the global channels)
that messages are fanned out on; a wildcard name expands to one channel per symbol.

A ``Session`` remembers the names a connection subscribed to, as given: unsubscribing
``trades.*`` leaves ``trades.AAPL`` in place when that was subscribed by name too.
"""

from __future__ import annotations

from collections.abc import Iterable

Channel = tuple[str, str | None]
"""A concrete channel: (kind, symbol); symbol is None for the global channels."""

BOOK = "book"
TRADES = "trades"
BBO = "bbo"
LIQUIDATIONS = "liquidations"
ACCOUNTS = "accounts"
INSTRUMENTS = "instruments"
STATUS = "status"
NEWS = "news"
ROUNDS = "rounds"

SYMBOL_KINDS = frozenset({BOOK, TRADES, BBO})
GLOBAL_KINDS = frozenset({LIQUIDATIONS, ACCOUNTS, INSTRUMENTS, STATUS, NEWS, ROUNDS})
WILDCARD = "*"


def parse(name: str, symbols: Iterable[str]) -> Channel | None:
    """``(kind, symbol or "*")`` for a valid name (``symbols``: the symbols that exist), else
    None. Never raises."""
    if name in GLOBAL_KINDS:
        return name, None
    kind, dot, symbol = name.partition(".")
    if not dot or kind not in SYMBOL_KINDS:
        return None
    if symbol == WILDCARD or symbol in symbols:
        return kind, symbol
    return None


def expand(channel: Channel, symbols: Iterable[str]) -> list[Channel]:
    """The concrete channels a parsed name stands for."""
    kind, symbol = channel
    if symbol == WILDCARD:
        return [(kind, s) for s in symbols]
    return [channel]


def unknown_names(names: Iterable[str], symbols: Iterable[str]) -> list[str]:
    """The names among ``names`` that are not valid channels."""
    known = set(symbols)
    return [name for name in names if parse(name, known) is None]


class Session:
    """One connection's subscriptions: the names it asked for, the concrete channels they
    give, and the book depth per subscribed book symbol."""

    __slots__ = ("channels", "depths", "name_depths", "names")

    def __init__(self) -> None:
        self.names: list[str] = []
        """Subscribed names in the order first subscribed (no duplicates)."""
        self.channels: set[Channel] = set()
        self.depths: dict[str, int] = {}
        """Depth of each book channel held (symbol -> depth)."""
        self.name_depths: dict[str, int] = {}
        """Depth last asked for with each book name (``book.S`` or ``book.*``)."""

    def subscribe(self, names: Iterable[str], symbols: list[str], depth: int) -> list[Channel]:
        """Add valid ``names``; returns the concrete channels they stand for, in request order
        without duplicates (held before or not: a book among them is re-snapshotted)."""
        requested: dict[Channel, None] = {}
        known = set(symbols)
        for name in names:
            parsed = parse(name, known)
            if parsed is None:
                continue
            if name not in self.names:
                self.names.append(name)
            if parsed[0] == BOOK:
                self.name_depths[name] = depth
            for channel in expand(parsed, symbols):
                requested[channel] = None
        self.channels.update(requested)
        return list(requested)

    def unsubscribe(self, names: Iterable[str], symbols: list[str]) -> list[Channel]:
        """Drop ``names``; returns the concrete channels no longer held by any remaining name."""
        dropped = set(names)
        self.names = [name for name in self.names if name not in dropped]
        for name in dropped:
            self.name_depths.pop(name, None)
        return self.refresh(symbols)[1]

    def depth_for(self, symbol: str, default: int) -> int:
        """The depth a book channel gained by ``refresh`` gets: that of its own name, else of
        ``book.*``."""
        depths = self.name_depths
        return depths.get(f"{BOOK}.{symbol}", depths.get(f"{BOOK}.{WILDCARD}", default))

    def refresh(self, symbols: list[str]) -> tuple[list[Channel], list[Channel]]:
        """Recompute the concrete channels (the symbol list changed, or names were dropped);
        returns (added, removed)."""
        known = set(symbols)
        wanted: set[Channel] = set()
        for name in self.names:
            parsed = parse(name, known)
            if parsed is not None:
                wanted.update(expand(parsed, symbols))
        added = [channel for channel in wanted if channel not in self.channels]
        removed = [channel for channel in self.channels if channel not in wanted]
        self.channels = wanted
        return added, removed
