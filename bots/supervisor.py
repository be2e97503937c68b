"""``python -m bots --config bots.toml``: one ``python -m bots`` process per ``[[bot]]``.

A bots file::

    config = "exchange/default.toml"   # optional: the system config handed to every bot
    gateway = "ws://127.0.0.1:9001"    # optional defaults for every bot
    marketdata = "ws://127.0.0.1:9010"
    app_dir = "."                      # where module:Class strategies live

    [[bot]]
    name = "maker1"                    # optional (default: the account)
    strategy = "maker"
    account = "maker1"
    api_key = "maker1-key"
    symbol = "AAPL"
    seed = 1
    params = { spread_bps = 10 }

Relative paths are relative to the bots file. Every bot is checked (strategy loads, params
fit) before any starts. Children's output is prefixed with ``name |``. A child that dies
is restarted with backoff, except on exit code 2 (a usage error: retrying cannot help).
SIGTERM/SIGINT is forwarded to every child; the supervisor exits 0 once they are gone
(children still running after 4 s are killed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from bots.loader import StrategyLoadError, load_strategy_class
from bots.params import ParamError, build_config, to_literal
from exchange.service.runtime import run, stop_event_on_signals

KILL_AFTER_S = 4.0


class BotSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    strategy: str
    account: str
    symbol: str
    name: str | None = None
    api_key: str | None = None
    seed: int | None = None
    params: dict[str, Any] = {}
    max_rate: float | None = None


class BotsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bot: list[BotSpec]
    config: str | None = None
    gateway: str | None = None
    marketdata: str | None = None
    app_dir: str | None = None
    log_dir: str | None = None


def load_bots_file(path: Path) -> BotsFile:
    """Parse and validate ``path``. Raises ValueError with a readable message."""
    try:
        raw = tomllib.loads(path.read_text())
        spec = msgspec.convert(raw, BotsFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"bots file {str(path)!r}: {exc}") from None
    names = [bot.name or bot.account for bot in spec.bot]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"bots file {str(path)!r}: duplicate bot names {duplicates}")
    return spec


def child_argv(spec: BotsFile, bot: BotSpec, base: Path, args: argparse.Namespace) -> list[str]:
    """The command line of one bot's process."""

    def rel(value: str) -> str:
        return str((base / value).resolve()) if not Path(value).is_absolute() else value

    argv = [sys.executable, "-m", "bots", "--strategy", bot.strategy]
    argv += ["--account", bot.account, "--symbol", bot.symbol]
    argv += ["--name", f"bot-{bot.name or bot.account}"]
    if bot.api_key is not None:
        argv += ["--api-key", bot.api_key]
    if bot.seed is not None:
        argv += ["--seed", str(bot.seed)]
    if bot.max_rate is not None:
        argv += ["--max-rate", str(bot.max_rate)]
    for key, value in bot.params.items():
        argv += ["--param", f"{key}={to_literal(value)}"]
    for flag, value in (
        ("--config", rel(spec.config) if spec.config else None),
        ("--gateway", args.gateway or spec.gateway),
        ("--marketdata", args.marketdata or spec.marketdata),
        ("--app-dir", rel(spec.app_dir or ".") if args.app_dir is None else args.app_dir),
        ("--log-dir", args.log_dir or (rel(spec.log_dir) if spec.log_dir else None)),
        ("--host", args.host),
    ):
        if value is not None:
            argv += [flag, value]
    return argv


def check(spec: BotsFile, base: Path, app_dir: str | None) -> None:
    """Load every bot's strategy and params now, so that mistakes show before launch."""
    directory = app_dir or str((base / (spec.app_dir or ".")).resolve())
    for bot in spec.bot:
        name = bot.name or bot.account
        try:
            cls = load_strategy_class(bot.strategy, directory)
            build_config(cls.Config, bot.params, strategy_name=bot.strategy)
        except (StrategyLoadError, ParamError) as exc:
            raise ValueError(f"bot {name!r}: {exc}") from None


def run_bots_file(path: Path, args: argparse.Namespace) -> int:
    """Validate, then supervise; returns the exit code (2 for a bad file)."""
    try:
        spec = load_bots_file(path)
        check(spec, path.parent, args.app_dir)
    except ValueError as exc:
        print(f"python -m bots: error: {exc}", file=sys.stderr)
        return 2
    commands = {
        bot.name or bot.account: child_argv(spec, bot, path.parent, args) for bot in spec.bot
    }
    run(lambda: supervise(commands))
    return 0  # pragma: no cover - run() exits


async def supervise(commands: dict[str, list[str]]) -> int:
    """Run every command until SIGTERM/SIGINT, restarting the ones that crash."""
    stop = stop_event_on_signals()
    children: dict[str, asyncio.subprocess.Process] = {}
    tasks = [
        asyncio.create_task(_keep(name, argv, children, stop)) for name, argv in commands.items()
    ]
    await stop.wait()
    for process in children.values():
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in children.values())), KILL_AFTER_S)
    except TimeoutError:
        for process in children.values():
            if process.returncode is None:
                process.kill()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0


async def _keep(
    name: str,
    argv: list[str],
    children: dict[str, asyncio.subprocess.Process],
    stop: asyncio.Event,
) -> None:
    delay = 1.0
    while not stop.is_set():
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        children[name] = process
        print(f"{name} | started pid={process.pid}", flush=True)
        assert process.stdout is not None
        async for line in process.stdout:
            print(f"{name} | {line.decode(errors='replace').rstrip()}", flush=True)
        code = await process.wait()
        if stop.is_set():
            return
        print(f"{name} | exited with code {code}", flush=True)
        if code == 2:
            print(f"{name} | not restarted: fix the error above", flush=True)
            return
        await asyncio.sleep(delay)  # restart backoff
        delay = min(delay * 2, 30.0)
