"""``python -m exporter``: write trades.csv, performance.csv, news.csv, rounds.csv and
status.csv from the engine's event stream.

Flags (each also ``EXCHANGE_EXPORTER_<FLAG>`` / ``EXCHANGE_<FLAG>``, then the config file's
``[exporter]``): ``--upstream`` (ws://127.0.0.1:9002), ``--out`` (./out), ``--config``,
``--log-dir``, ``--host`` (127.0.0.1), ``--port`` (off by default: the exporter listens on
nothing; with a port, 0 picks a free one, it serves ``/healthz`` and ``/metrics`` there and
prints ``listening port=N``). SIGTERM/SIGINT: flush, fsync and exit 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exchange.protocol.config import SystemConfig, load_config
from exchange.service.runtime import announce_listening, launch, stop_event_on_signals
from exchange.service.settings import base_parser, resolve
from exporter.health import HealthServer
from exporter.service import Exporter


def parse_settings(
    argv: Sequence[str] | None = None,
) -> tuple[dict[str, Any], SystemConfig]:
    """Flags > environment > config file > defaults. Raises ConfigError or ValueError."""
    parser = base_parser(
        "exporter",
        "Export trades.csv, performance.csv, news.csv, rounds.csv and status.csv from the engine.",
    )
    parser.add_argument("--upstream", default=None, help="engine event port URL")
    parser.add_argument("--out", default=None, help="output directory (./out)")
    parser.add_argument(
        "--port", type=int, default=None, help="serve /healthz and /metrics here (off; 0: any)"
    )
    args = parser.parse_args(argv)
    config_path = resolve(args, "exporter", {})["config"]
    config = load_config(config_path)
    section = config.exporter
    settings = resolve(
        args,
        "exporter",
        {
            "host": "127.0.0.1",
            "config": config_path,
            "log_dir": "logs",
            "upstream": section.upstream,
            "out": section.out,
            "port": section.port,
        },
    )
    port = settings["port"]
    if isinstance(port, str):  # from the environment: no typed fallback to convert to
        try:
            settings["port"] = int(port)
        except ValueError:
            source = "EXCHANGE_EXPORTER_PORT or EXCHANGE_PORT"
            raise ValueError(f"port {port!r} ({source}) is not a valid int") from None
    return settings, config


async def serve(settings: dict[str, object], config: SystemConfig) -> int:
    stop = stop_event_on_signals()
    exporter = Exporter(
        upstream=str(settings["upstream"]),
        out_dir=Path(str(settings["out"])),
        settings=config.exporter,
    )
    health: HealthServer | None = None
    port = settings["port"]
    if isinstance(port, int):
        health = HealthServer(exporter, str(settings["host"]), port)
        announce_listening(port=await health.start())
    try:
        return await exporter.run(stop)
    finally:
        if health is not None:
            await health.stop()


def main(argv: Sequence[str] | None = None) -> None:
    launch("exporter", argv, parse_settings, serve)


if __name__ == "__main__":
    main()
