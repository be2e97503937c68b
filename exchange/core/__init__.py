"""The pure matching core: books, orders, accounts, margin, liquidation.

No asyncio, sockets, clock or logging here: a command and its input time go in, a list of
events comes out (``Exchange.submit``). Imports only ``exchange.protocol``, msgspec and the
standard library.
"""

from __future__ import annotations

from exchange.core.config import AccountSpec, CoreConfig
from exchange.core.exchange import Exchange
from exchange.core.instruments import MONEY_SCALE, Instrument, InstrumentSpec

__all__ = ["MONEY_SCALE", "AccountSpec", "CoreConfig", "Exchange", "Instrument", "InstrumentSpec"]
