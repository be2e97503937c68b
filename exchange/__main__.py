"""``python -m exchange``: the engine process.

Flags (each also from ``EXCHANGE_ENGINE_<FLAG>`` or ``EXCHANGE_<FLAG>``, then the config file):
``--host`` (127.0.0.1), ``--config FILE``, ``--command-port`` (9000), ``--event-port`` (9002),
``--data-dir`` (./data), ``--log-dir`` (./logs), ``--scenario FILE`` (operator commands played
on the engine's clock: ``exchange.protocol.scenario``). Port 0 picks a free port; the bound
ports are printed as ``listening command_port=X event_port=Y``. SIGTERM/SIGINT: ``EngineApp.stop``
(connected gateways are served until they leave, at most 2 s; journal and snapshot), exit 0.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from exchange.protocol.config import SystemConfig, load_config
from exchange.protocol.scenario import ScenarioError
from exchange.protocol.scenario import load as load_scenario
from exchange.service.runtime import announce_listening, launch, stop_event_on_signals
from exchange.service.settings import base_parser, resolve

PROCESS = "engine"


def settings_from(argv: Sequence[str] | None) -> tuple[dict[str, Any], SystemConfig]:
    """Parse flags, read the config file, and merge flags > env > config > defaults.

    Raises ConfigError for a bad config file and ValueError for a bad environment value.
    """
    parser = base_parser("exchange", "The exchange engine: matching core, command and event ports.")
    parser.add_argument("--command-port", type=int, default=None, help="gateways' port (9000)")
    parser.add_argument("--event-port", type=int, default=None, help="event stream port (9002)")
    parser.add_argument("--data-dir", default=None, help="journal and snapshots (./data)")
    parser.add_argument(
        "--fsync",
        default=None,
        choices=["batch", "always", "none"],
        help="journal durability; replies always leave after the journal write: also fsync "
        "every few ms (batch, default), fsync before replying (always), never fsync (none)",
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="a scenario file: news and rounds the engine plays on its own clock",
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
            "command_port": config.engine.command_port,
            "event_port": config.engine.event_port,
            "data_dir": config.engine.data_dir,
            "fsync": config.engine.fsync,
            "scenario": None,
        },
    )
    if settings["fsync"] not in ("batch", "always", "none"):
        raise ValueError(f"fsync must be batch, always or none, not {settings['fsync']!r}")
    return settings, config


async def serve(settings: dict[str, Any], config: SystemConfig) -> int:
    """Run the engine until SIGTERM/SIGINT; returns the exit code."""
    from exchange.engine import EngineApp
    from exchange.engine.recovery import RecoveryError

    stop = stop_event_on_signals()
    scenario = None
    if settings["scenario"]:
        try:
            scenario = load_scenario(settings["scenario"])
        except ScenarioError as exc:
            print(f"{PROCESS}: {exc}", file=sys.stderr)
            return 2
    try:
        app = EngineApp(
            config,
            host=settings["host"],
            command_port=int(settings["command_port"]),
            event_port=int(settings["event_port"]),
            data_dir=settings["data_dir"],
            fsync=settings["fsync"],
            scenario=scenario,
        )
    except (RecoveryError, ValueError) as exc:
        print(f"{PROCESS}: cannot start from {settings['data_dir']}: {exc}", file=sys.stderr)
        return 2
    await app.start()
    announce_listening(command_port=app.command_port, event_port=app.event_port)
    await stop.wait()
    await app.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    launch(PROCESS, argv, settings_from, serve)


if __name__ == "__main__":
    main()
