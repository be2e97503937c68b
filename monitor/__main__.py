"""``python -m monitor [--token T] [--marketdata ws://…]``: the live terminal monitor."""

from __future__ import annotations

import os

from exchange.protocol.config import ConfigError, load_config
from exchange.service.settings import base_parser, resolve
from monitor.app import MonitorApp


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(
        "monitor", "A live terminal view of the exchange (q quits).", log_file=False
    )
    parser.add_argument("--marketdata", default=None, help="relay URL (ws://127.0.0.1:9010)")
    parser.add_argument(
        "--token", default=None, help="monitor token for the accounts channel (from config)"
    )
    parser.add_argument("--fps", type=float, default=None, help="screen refreshes per second")
    parser.add_argument("--depth", type=int, default=None, help="book levels shown (10)")
    args = parser.parse_args(argv)
    try:
        config = load_config(
            os.environ.get("EXCHANGE_CONFIG") if args.config is None else args.config
        )
    except ConfigError as exc:
        parser.exit(2, f"python -m monitor: error: {exc}\n")
    tokens = config.marketdata.monitor_tokens
    settings = resolve(
        args,
        "monitor",
        {
            "marketdata": f"ws://{args.host or '127.0.0.1'}:{config.marketdata.port}",
            "token": tokens[0] if tokens else None,
            "fps": 5.0,
            "depth": 10,
        },
    )
    MonitorApp(
        settings["marketdata"],
        settings["token"],
        fps=float(settings["fps"]),
        depth=int(settings["depth"]),
    ).run()


if __name__ == "__main__":
    main()
