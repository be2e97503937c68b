"""The exchange engine: the pure matching core (``exchange.core``), the wire protocol
(``exchange.protocol``) and the engine process around them (``exchange.engine``).

Importing any part of the package installs the import hook of ``exchange.native`` (build
tooling, not part of the core): when ``exchange.core`` is first imported it runs the compiled
core if a current one is built, else the Python sources (``EXCHANGE_PURE_CORE=1`` forces them).
"""

from __future__ import annotations

from exchange import native as _native

_native.install()
