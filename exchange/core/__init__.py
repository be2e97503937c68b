"""The pure matching core: books, orders, accounts, margin, liquidation.

No asyncio, sockets, clock or logging here: a command and its input time go in, a list of
events comes out (``Exchange.submit``). Imports only ``exchange.protocol``, msgspec and pure
standard-library modules (the allow-list in tests/unit/test_import_rules.py).
"""

from __future__ import annotations

from exchange.core import exchange as _exchange_module
from exchange.core.config import AccountSpec, CoreConfig
from exchange.core.exchange import Exchange
from exchange.core.instruments import MONEY_SCALE, Instrument, InstrumentSpec

BUILD: str
"""Which build runs: ``native``, ``none`` (no compiled modules), ``forced_pure``
(``EXCHANGE_PURE_CORE=1``) or ``stale`` (compiled before the sources changed; not used).

Chosen and set before this module's body runs by the import hook of ``exchange/native.py``
(installed by ``exchange/__init__.py``): the core itself reads no file and no environment."""

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
