"""``python -m gateway``: the order-entry gateway process.

Flags (each also from ``EXCHANGE_GATEWAY_<FLAG>`` or ``EXCHANGE_<FLAG>``, then the config file):
``--host`` (127.0.0.1), ``--config FILE``, ``--port`` (9001), ``--rest-port`` (9003: REST
order entry, PROTOCOL §6), ``--engine`` (ws://127.0.0.1:9000), ``--log-dir`` (./logs). Port 0
picks a free port; the bound ports are printed as ``listening port=X rest_port=Y``.
SIGTERM/SIGINT: ``GatewayApp.stop`` (cancel-only, the
cancel-on-disconnect cancels sent and answered, then the sessions closed), exit 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from exchange.protocol.config import SystemConfig, load_config
from exchange.service.runtime import announce_listening, launch, stop_event_on_signals
from exchange.service.settings import base_parser, resolve

PROCESS = "gateway"


def settings_from(argv: Sequence[str] | None) -> tuple[dict[str, Any], SystemConfig]:
    """Parse flags, read the config file, and merge flags > env > config > defaults.

    Raises ConfigError for a bad config file, ValueError for a bad value.
    """
    parser = base_parser(PROCESS, "Order-entry gateway: client sessions in front of the engine.")
    parser.add_argument("--port", type=int, default=None, help="clients' port (9001)")
    parser.add_argument("--rest-port", type=int, default=None, help="REST order-entry port (9003)")
    parser.add_argument(
        "--engine", default=None, help="engine command port URL (ws://127.0.0.1:9000)"
    )
    args = parser.parse_args(argv)
    config_path = resolve(args, PROCESS, {})["config"]
    config = load_config(config_path)
    settings = resolve(
        args,
        PROCESS,
        {
            "host": "127.0.0.1",
            "config": config_path,
            "log_dir": "logs",
            "port": config.gateway.port,
            "rest_port": config.gateway.rest_port,
            "engine": config.gateway.engine,
        },
    )
    url = urlsplit(settings["engine"])
    if url.scheme not in ("ws", "wss") or not url.hostname:
        raise ValueError(f"--engine must be a ws:// URL, got {settings['engine']!r}")
    return settings, config


async def serve(settings: dict[str, Any], config: SystemConfig) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the exit code."""
    from gateway.server import GatewayApp

    stop = stop_event_on_signals()
    app = GatewayApp(
        config,
        host=settings["host"],
        port=int(settings["port"]),
        rest_port=int(settings["rest_port"]),
        engine_url=settings["engine"],
    )
    await app.start()
    announce_listening(port=app.port, rest_port=app.rest_port)
    await stop.wait()
    await app.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    launch(PROCESS, argv, settings_from, serve)


if __name__ == "__main__":
    main()
