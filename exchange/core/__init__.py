"""The pure matching core: books, orders, accounts, margin, liquidation.

No asyncio, sockets, clock or logging here: a command and its input time go in, a list of
events comes out (``Exchange.submit``). Imports only ``exchange.protocol``, msgspec and the
standard library.
"""

from __future__ import annotations

from exchange.core.native import prefer_sources_if_needed

BUILD = prefer_sources_if_needed(__name__)
"""Which build runs: ``native``, ``none`` (no compiled modules), ``forced_pure``
(``EXCHANGE_PURE_CORE=1``) or ``stale`` (compiled before the sources changed; not used)."""

from exchange.core import exchange as _exchange_module  # noqa: E402
from exchange.core.config import AccountSpec, CoreConfig  # noqa: E402
from exchange.core.exchange import Exchange  # noqa: E402
from exchange.core.instruments import MONEY_SCALE, Instrument, InstrumentSpec  # noqa: E402

COMPILED: bool = not _exchange_module.__file__.endswith(".py")
"""True when the core runs as mypyc-compiled code (``scripts/build_native``, run by setup)."""

__all__ = [
    "BUILD",
    "COMPILED",
    "MONEY_SCALE",
    "AccountSpec",
    "CoreConfig",
    "Exchange",
    "Instrument",
    "InstrumentSpec",
]
