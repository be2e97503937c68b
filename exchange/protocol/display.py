"""How money and prices print outside the engine (PROTOCOL.md §2, "Money is exact").

The engine already publishes every amount rounded half-even to 8 decimals and every price of
whole ticks at the tick's decimals (as the double nearest that decimal). Processes that print
those numbers (the exporter's files, its report, the monitor) go through these functions so
that they print them as the shortest decimal, and so that any arithmetic they do themselves on
floats (sums, differences) is rounded where it prints: never ``19016.404500000004``.

Pure standard library; no state.
"""

from __future__ import annotations

from decimal import Decimal

MAX_DECIMALS = 8
"""Money and average prices print with at most this many decimals."""


def decimal_text(value: float | int, decimals: int = MAX_DECIMALS, grouping: bool = False) -> str:
    """``value`` rounded half-even to ``decimals`` (≤ 8) as the shortest decimal, without an
    exponent: ``19016.4045``, ``-0.0303``, ``0.00000001``, ``1505.0``; ``0.0`` for zero (also
    for ``-0.0`` and for values that round to zero). An int prints as an int.

    ``grouping`` separates thousands with commas (``1,250.5``), for screens and tables.
    """
    if type(value) is int:
        return f"{value:,}" if grouping else str(value)
    text = repr(value)
    dot = text.find(".")
    if dot < 0 or "e" in text or "n" in text or len(text) - dot - 1 > decimals:
        if value != value or value in (float("inf"), float("-inf")):
            return text
        value = round(value, decimals)
        text = repr(value)
        if "e" in text:
            text = f"{value:.{decimals}f}".rstrip("0")
            if text.endswith("."):
                text += "0"
    if value == 0:
        return "0.0"
    if grouping:
        whole, _, fraction = text.partition(".")
        sign = "-" if whole.startswith("-") else ""
        text = f"{sign}{int(whole.lstrip('-')):,}.{fraction}"
    return text


def tick_decimals(tick_size: float) -> int:
    """Decimals of a tick size (``0.01`` → 2, ``0.5`` → 1, ``5`` → 0), at most 8."""
    exponent = Decimal(repr(float(tick_size))).normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        return 0
    return min(MAX_DECIMALS, max(0, -exponent))


def price_text(price: float, tick_size: float | None, decimals: int | None = None) -> str:
    """A price at the tick's decimals, fixed (``190.10`` for tick 0.01, so columns align); a
    price off the tick grid (a half-tick mid, an average price) at as many more decimals as it
    needs, at most 8 (``190.105``). Without a tick size: 2 decimals when they are exact.

    ``decimals`` overrides the tick's decimals (callers that format many prices of one
    symbol compute ``tick_decimals`` once).
    """
    if decimals is None:
        decimals = tick_decimals(tick_size) if tick_size and tick_size > 0 else 2
    exact = round(price, MAX_DECIMALS)
    text = f"{exact:.{decimals}f}"
    if float(text) != exact:
        text = decimal_text(exact)
    return text
