"""The pure matching core: books, orders, accounts, margin, liquidation.

No asyncio, sockets, clock or logging here: a command and its input time go in, a list of
events comes out (``Exchange.submit``). Imports only ``exchange.protocol``, msgspec and the
standard library.
"""

from __future__ import annotations

from exchange.core import exchange as _exchange_module
from exchange.core.config import AccountSpec, CoreConfig
from exchange.core.exchange import Exchange
from exchange.core.instruments import MONEY_SCALE, Instrument, InstrumentSpec

COMPILED: bool = not _exchange_module.__file__.endswith(".py")
"""True when the core runs as mypyc-compiled code (``scripts/build_native``)."""

__all__ = [
    "COMPILED",
    "MONEY_SCALE",
    "AccountSpec",
    "CoreConfig",
    "Exchange",
    "Instrument",
    "InstrumentSpec",
]
