"""What a request's numbers may be before anything downstream touches them.

The gateway applies these checks before a request leaves it, and the engine applies them again
at its own boundary (a buggy gateway must not be able to hurt it). They cover only what the
system cannot represent; business limits (tick, band, ``max_order_qty``) are the core's.

- ``qty`` is a positive integer below 2^53 (exact in every JSON reader): else ``invalid_qty``.
- ``price`` is a finite positive number no larger than ``MAX_PRICE``: else ``invalid_price``;
  so is ``trigger_price`` (PROTOCOL §3.1).
  The core adds the instrument's own bound (at most ``MAX_TICKS`` ticks).
- A number echoed in a reply must be encodable: ``echo_int`` maps one that is not to 0.

Pure functions; imports only the standard library.
"""

from __future__ import annotations

import math
from typing import Literal

MAX_QTY = 2**53 - 1
"""The largest quantity an order may carry: integers above it are not exact in a double."""
MAX_TICKS = 2**53 - 1
"""The largest price, in ticks, the core accepts: display prices stay exact doubles."""
MAX_PRICE = float(2**53)
"""An upper bound on any display price, whatever the tick (the core's bound is tighter)."""
MAX_ID = 2**63 - 1
"""Integer ids (``req_id``, ``order_id``) are signed 64-bit: anything larger cannot be echoed."""

_ECHO_LIMIT = 2**63 - 1

Problem = tuple[Literal["invalid_qty", "invalid_price"], str]


def qty_problem(qty: int | None) -> Problem | None:
    """Why ``qty`` cannot be an order quantity, or None when it can (None means absent)."""
    if qty is None or 0 < qty <= MAX_QTY:
        return None
    return "invalid_qty", f"qty must be a whole number of lots from 1 to {MAX_QTY}"


def price_problem(price: float | None) -> Problem | None:
    """Why ``price`` cannot be a price, or None when it can (None means absent)."""
    if price is None or (0.0 < price <= MAX_PRICE and math.isfinite(price)):
        return None
    return "invalid_price", "price must be a finite positive number on the tick"


def trigger_problem(trigger_price: float | None) -> Problem | None:
    """Why ``trigger_price`` cannot be a trigger price (the bounds of a price), or None."""
    if price_problem(trigger_price) is None:
        return None
    return "invalid_price", "trigger_price must be a finite positive number on the tick"


def order_problem(
    qty: int | None, price: float | None, trigger_price: float | None = None
) -> Problem | None:
    """The first problem of an order's (or amend's) ``qty``, ``price`` and
    ``trigger_price``, or None."""
    return qty_problem(qty) or price_problem(price) or trigger_problem(trigger_price)


def echo_int(value: int) -> int:
    """``value`` if a reply can carry it, else 0 (a reject echoes what it can of the request)."""
    return value if -_ECHO_LIMIT <= value <= _ECHO_LIMIT else 0
