"""``python -m bots``: run one strategy, or (``--config bots.toml`` with ``[[bot]]`` tables)
supervise one process per bot.

Settings come from flags, else ``EXCHANGE_BOTS_<FLAG>`` / ``EXCHANGE_<FLAG>``, else the
system config's ``[bots]`` section. Usage errors (unknown strategy, bad parameter, refused
API key) exit with code 2 and a one-line explanation on stderr.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bots.api import Context, Strategy
from bots.driver import BotDriver
from bots.loader import BUILTINS, StrategyLoadError, load_strategy_class
from bots.params import ParamError, build_config, describe, parse_assignments
from bots.runner import BotRunner, RunnerSettings
from exchange.protocol.config import ConfigError, load_config
from exchange.service.logs import configure_logging
from exchange.service.runtime import run, stop_event_on_signals
from exchange.service.settings import base_parser, resolve


class UsageError(Exception):
    """Bad command line or files: reported in one line, exit code 2."""


def parser() -> argparse.ArgumentParser:
    p = base_parser("bots", "Run a trading strategy against the exchange.")
    p.description = (
        "Run a trading strategy against the exchange, or with --config BOTS.toml "
        "(a file of [[bot]] tables) one process per bot. Built-in strategies: "
        + ", ".join(BUILTINS)
    )
    p.add_argument("--strategy", help="built-in name or module:Class (user code)")
    p.add_argument("--account", help="account name")
    p.add_argument("--api-key", help="API key (without one, the account is registered)")
    p.add_argument("--symbol", help="symbol(s) to trade, comma-separated; the first is main")
    p.add_argument("--seed", type=int, default=None, help="seed of ctx.random (default: random)")
    p.add_argument("--param", action="append", default=None, metavar="K=V", help="parameter")
    p.add_argument("--params", default=None, metavar="FILE", help="TOML file of parameters")
    p.add_argument("--gateway", default=None, help="gateway URL (ws://127.0.0.1:9001)")
    p.add_argument("--marketdata", default=None, help="relay URL (ws://127.0.0.1:9010)")
    p.add_argument("--app-dir", default=None, help="where module:Class is imported from (.)")
    p.add_argument("--depth", type=int, default=None, help="book levels to keep (20)")
    p.add_argument("--max-rate", type=float, default=None, help="cap on requests per second")
    p.add_argument("--register-cash", type=float, default=None, help="cash when registering")
    p.add_argument("--name", default=None, help="name in logs (default: bot-ACCOUNT)")
    p.add_argument(
        "--show-params", action="store_true", help="print the strategy's parameters and exit"
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point: never returns (exits with the process's code)."""
    args = parser().parse_args(argv)
    try:
        bots_file = _bots_file(args.config)
        if bots_file is not None:
            from bots.supervisor import run_bots_file

            sys.exit(run_bots_file(bots_file, args))
        settings = _settings(args)
        if args.show_params:
            print(show_params(settings["strategy"], settings["app_dir"]))
            sys.exit(0)
        strategy, context, runner_settings = prepare(settings)
    except (UsageError, StrategyLoadError, ParamError, ConfigError, ValueError) as exc:
        print(f"python -m bots: error: {exc}", file=sys.stderr)
        sys.exit(2)
    name = args.name or f"bot-{runner_settings.account}"
    configure_logging(name, settings["log_dir"] or "logs")
    run(lambda: _serve(strategy, context, runner_settings, settings))


def _bots_file(config: str | None) -> Path | None:
    """``config`` when it is a bots file (has ``[[bot]]`` tables), else None."""
    if config is None:
        return None
    path = Path(config)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None  # load_config reports it properly
    return path if isinstance(data.get("bot"), list) else None


def show_params(strategy: str, app_dir: str | None) -> str:
    """The strategy's parameters, one per line, for ``--show-params``."""
    cls = load_strategy_class(strategy, app_dir)
    lines = describe(cls.Config) or ["(no parameters)"]
    return "\n".join([f"{strategy} ({cls.__module__}.{cls.__name__}):"] + [f"  {x}" for x in lines])


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    system = load_config(os.environ.get("EXCHANGE_CONFIG") if args.config is None else args.config)
    gateway, marketdata = system.bots.gateway, system.bots.marketdata
    settings = resolve(
        args,
        "bots",
        {
            "gateway": gateway,
            "marketdata": marketdata,
            "depth": 20,
            "register_cash": 100_000.0,
            "app_dir": ".",
            "log_dir": "logs",
        },
    )
    if args.host is not None:
        settings["gateway"] = _with_host(settings["gateway"], args.host, args.gateway)
        settings["marketdata"] = _with_host(settings["marketdata"], args.host, args.marketdata)
    if not settings.get("strategy"):
        raise UsageError("--strategy is required (a built-in name or module:Class)")
    if args.show_params:
        return settings
    for required in ("account", "symbol"):
        if not settings.get(required):
            raise UsageError(f"--{required} is required")
    return settings


def _with_host(url: str, host: str, explicit: str | None) -> str:
    if explicit is not None:
        return url
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{host}{port}"))


def prepare(settings: dict[str, Any]) -> tuple[Strategy[Any], Context, RunnerSettings]:
    """Load the strategy and its config and build the context. Raises the usage errors."""
    cls = load_strategy_class(settings["strategy"], settings["app_dir"])
    params = parse_assignments(settings.get("param") or [])
    config = build_config(cls.Config, params, settings.get("params"), settings["strategy"])
    symbols = [s.strip() for s in str(settings["symbol"]).split(",") if s.strip()]
    seed = settings.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    settings["seed"] = seed
    context = Context(
        account=settings["account"],
        symbols=symbols,
        rng=random.Random(seed),
        depth=int(settings["depth"]),
    )
    runner_settings = RunnerSettings(
        gateway=settings["gateway"],
        marketdata=settings["marketdata"],
        account=settings["account"],
        api_key=settings.get("api_key"),
        register_cash=float(settings["register_cash"]),
        depth=int(settings["depth"]),
    )
    return cls(config), context, runner_settings


async def _serve(
    strategy: Strategy[Any],
    context: Context,
    runner_settings: RunnerSettings,
    settings: dict[str, Any],
) -> int:
    import structlog

    log = structlog.get_logger()
    stop = stop_event_on_signals()

    def on_error(hook: str, exc: BaseException) -> None:
        log.error("strategy_error", hook=hook, error=repr(exc), exc_info=exc)

    prefix = f"{context.account[:12]}-{secrets.token_hex(3)}-"
    driver = BotDriver(
        strategy,
        context,
        client_order_prefix=prefix,
        max_rate=settings.get("max_rate"),
        on_error=on_error,
    )
    log.info(
        "bot_started",
        strategy=settings["strategy"],
        account=context.account,
        symbols=",".join(context.symbols),
        seed=settings["seed"],
        config=repr(strategy.config),
        gateway=runner_settings.gateway,
        marketdata=runner_settings.marketdata,
    )
    return await BotRunner(driver, runner_settings).run(stop)
