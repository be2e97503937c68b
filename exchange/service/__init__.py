"""The process kit shared by every process shell: settings from flags and ``EXCHANGE_*``
environment variables, structlog set-up, ``/healthz`` + ``/metrics`` over HTTP on the
WebSocket ports, and the asyncio/uvloop runner with clean SIGTERM handling.

Process packages may import ``exchange.protocol`` and ``exchange.service``, never
``exchange.core`` (enforced by tests/unit/test_import_rules.py).
"""
