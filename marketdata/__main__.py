"""``python -m marketdata``: the public market-data relay (PROTOCOL.md §1, §4).

Flags (each also ``EXCHANGE_MARKETDATA_<FLAG>`` / ``EXCHANGE_<FLAG>``, then the config file's
``[marketdata]``): ``--host`` (127.0.0.1), ``--port`` (9010; 0 picks a free one), ``--upstream``
(the engine's event port, ws://127.0.0.1:9002), ``--config``, ``--log-dir``. Prints
``listening port=N`` once serving; SIGTERM/SIGINT close every connection and exit 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

from exchange.protocol.config import SystemConfig, load_config
from exchange.protocol.messages import InstrumentInfo
from exchange.service.runtime import announce_listening, launch, stop_event_on_signals
from exchange.service.settings import base_parser, resolve
from marketdata.server import MarketDataRelay


def instrument_infos(config: SystemConfig) -> list[InstrumentInfo]:
    """The configured instruments in their public shape (used until the engine's arrive):
    the spec's fields that are public (not e.g. its ``circuit_breaker``)."""
    public = frozenset(InstrumentInfo.__struct_fields__)
    return [
        InstrumentInfo(**{k: v for k, v in msgspec.structs.asdict(spec).items() if k in public})
        for spec in config.instruments
    ]


def parse_settings(
    argv: Sequence[str] | None = None,
) -> tuple[dict[str, Any], SystemConfig]:
    """Flags > environment > config file > defaults. Raises ConfigError or ValueError."""
    parser = base_parser("marketdata", "Public market-data relay (WebSocket + HTTP GET).")
    parser.add_argument("--port", type=int, default=None, help="public port (9010; 0: any)")
    parser.add_argument("--upstream", default=None, help="engine event port URL")
    args = parser.parse_args(argv)
    config_path = resolve(args, "marketdata", {})["config"]
    config = load_config(config_path)
    section = config.marketdata
    settings = resolve(
        args,
        "marketdata",
        {
            "host": "127.0.0.1",
            "config": config_path,
            "log_dir": "logs",
            "port": section.port,
            "upstream": section.upstream,
        },
    )
    return settings, config


async def serve(settings: dict[str, object], config: SystemConfig) -> int:
    """Run the relay until SIGTERM/SIGINT (0) or an internal failure (1)."""
    stop = stop_event_on_signals()
    relay = MarketDataRelay(
        upstream=str(settings["upstream"]),
        instruments=instrument_infos(config),
        settings=config.marketdata,
        host=str(settings["host"]),
        port=int(settings["port"]),  # type: ignore[call-overload]
    )
    port = await relay.start()
    announce_listening(port=port)
    stopper = asyncio.create_task(stop.wait())
    failure = asyncio.create_task(relay.wait_failed())
    await asyncio.wait({stopper, failure}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if failure.done():
        structlog.get_logger("marketdata").error("relay_failed", error=repr(failure.result()))
        code = 1
    stopper.cancel()
    failure.cancel()
    await relay.stop()
    return code


def main(argv: Sequence[str] | None = None) -> None:
    launch("marketdata", argv, parse_settings, serve)


if __name__ == "__main__":
    main()
