"""ARENA.toml: parsing and validation (PROTOCOL §8). Pure apart from reading the files named.

``load_arena(path)`` returns an ``ArenaConfig`` with every bot's strategy class loaded and its
params built, or raises ``ArenaInputError`` whose message is one line naming the file and
line (or the bot): the CLI prints it and exits 2 before writing anything.

Paths (``config``, a LOBSTER file) are relative to ARENA.toml's folder; ``module:Class``
strategies import from the working directory first, then ARENA.toml's folder.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bots.api import Strategy, StrategyConfig
from bots.loader import StrategyLoadError, load_strategy_class
from bots.params import ParamError, build_config
from exchange.protocol.config import ConfigError, SystemConfig, load_config
from exchange.protocol.names import ACCOUNT_NAME

DEFAULT_START = "2026-01-01T00:00:00Z"
BACKGROUND_PREFIX = "lobster"
"""Account names of the replayed background flow start with this; bots may not."""

ARENA_KEYS: dict[str, str] = {
    "config": "a path to the exchange config (TOML)",
    "rounds": "an integer >= 1",
    "seconds": "a number > 0",
    "seed": "an integer",
    "cash": "a number > 0",
    "latency_ms": "a number >= 0",
    "jitter_ms": "a number >= 0",
    "market": '"bots" or "lobster:PATH"',
    "start": "an ISO-8601 UTC time (2026-01-01T00:00:00Z)",
    "stop_on_error": "true or false",
    "charge_compute": "true or false",
}
BOT_KEYS: dict[str, str] = {
    "name": "an account name (1-32 of A-Za-z0-9_.-)",
    "strategy": "a built-in name or module:Class",
    "symbol": "a symbol of the config (several: comma-separated)",
    "params": "a table of the strategy's parameters",
}


class ArenaInputError(Exception):
    """Bad input: the message is one line naming the file and line, or the bot."""


@dataclass(frozen=True)
class BotEntry:
    """One ``[[bots]]`` table, validated: its strategy class loaded, its config built."""

    name: str
    strategy: str
    symbols: tuple[str, ...]
    params: dict[str, Any]
    strategy_class: type[Strategy[Any]]
    strategy_config: StrategyConfig
    line: int = 0


@dataclass(frozen=True)
class ArenaConfig:
    """The whole arena: where it came from, the venue's config, the rules and the bots."""

    path: Path
    system: SystemConfig
    rounds: int = 3
    seconds: float = 3600.0
    seed: int = 1
    cash: float = 100_000.0
    latency_ms: float = 1.0
    jitter_ms: float = 0.0
    market: str = "bots"
    lobster_path: Path | None = None
    start_ns: int = 0
    stop_on_error: bool = True
    charge_compute: bool = False
    bots: tuple[BotEntry, ...] = field(default_factory=tuple)

    def with_overrides(
        self, *, seed: int | None = None, rounds: int | None = None, seconds: float | None = None
    ) -> ArenaConfig:
        """The config with the command line's ``--seed``/``--rounds``/``--seconds`` applied.
        Raises ArenaInputError for a value out of range."""
        changes: dict[str, Any] = {}
        if seed is not None:
            changes["seed"] = seed
        if rounds is not None:
            if rounds < 1:
                raise ArenaInputError(f"--rounds {rounds}: expected an integer >= 1")
            changes["rounds"] = rounds
        if seconds is not None:
            if not seconds > 0:
                raise ArenaInputError(f"--seconds {seconds}: expected a number > 0")
            changes["seconds"] = float(seconds)
        return replace(self, **changes)


# ---------------------------------------------------------------------- line finding


class _Lines:
    """Where keys are in the TOML text: ``[arena]`` keys and the n-th ``[[bots]]`` table."""

    _HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\-]+)\s*\]")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.sections: list[tuple[str, int, int]] = []  # (name, first line, last line)
        current: tuple[str, int] | None = ("", 1)
        for number, line in enumerate(self.lines, 1):
            match = self._HEADER.match(line)
            if match:
                if current is not None:
                    self.sections.append((current[0], current[1], number - 1))
                current = (match.group(2), number)
        if current is not None:
            self.sections.append((current[0], current[1], len(self.lines)))

    def section(self, name: str, index: int = 0) -> tuple[int, int] | None:
        found = [(first, last) for s, first, last in self.sections if s == name]
        return found[index] if index < len(found) else None

    def key(self, key: str, name: str, index: int = 0) -> int:
        """The line of ``key = ...`` in section ``name`` (its ``index``-th occurrence); the
        section's header line when not found; 1 when there is no such section."""
        where = self.section(name, index)
        if where is None:
            return 1
        first, last = where
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(first, last + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        # inside an inline table (params = { key = ... }): the line that names it
        inline = re.compile(rf"[{{,]\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(first, last + 1):
            if inline.search(self.lines[number - 1]):
                return number
        return first


# ---------------------------------------------------------------------- loading


def load_arena(path: str | Path) -> ArenaConfig:
    """Read and validate ARENA.toml (see the module docstring). Raises ArenaInputError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ArenaInputError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = at.group(1) if at else "1"
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise ArenaInputError(f"{file}:{line}: TOML error: {message}") from None
    return _validate(file, raw, _Lines(text))


def _fail(file: Path, line: int, text: str) -> ArenaInputError:
    return ArenaInputError(f"{file}:{line}: {text}")


def _validate(file: Path, raw: dict[str, Any], lines: _Lines) -> ArenaConfig:
    base = file.resolve().parent
    for key in raw:
        if key not in ("arena", "bots"):
            raise _fail(
                file, _top_line(lines, key), f"unknown key {key!r} (expected [arena], [[bots]])"
            )
    arena = raw.get("arena", {})
    if not isinstance(arena, dict):
        raise _fail(file, _top_line(lines, "arena"), "arena must be a table: [arena]")
    for key in arena:
        if key not in ARENA_KEYS:
            raise _fail(
                file,
                lines.key(key, "arena"),
                f"unknown key {key!r} in [arena] (known: {', '.join(ARENA_KEYS)})",
            )

    def bad(key: str) -> ArenaInputError:
        return _fail(file, lines.key(key, "arena"), f"[arena] {key}: expected {ARENA_KEYS[key]}")

    values: dict[str, Any] = {}
    for key in ("rounds", "seed"):
        if key in arena:
            value = arena[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(key)
            if key == "rounds" and value < 1:
                raise bad(key)
            values[key] = value
    for key, low, strict in (
        ("seconds", 0.0, True),
        ("cash", 0.0, True),
        ("latency_ms", 0.0, False),
        ("jitter_ms", 0.0, False),
    ):
        if key in arena:
            value = arena[key]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise bad(key)
            if (value <= low) if strict else (value < low):
                raise bad(key)
            values[key] = float(value)
    for key in ("stop_on_error", "charge_compute"):
        if key in arena:
            if not isinstance(arena[key], bool):
                raise bad(key)
            values[key] = arena[key]

    # the exchange config
    system: SystemConfig
    if "config" in arena:
        if not isinstance(arena["config"], str):
            raise bad("config")
        config_path = base / arena["config"]
        line = lines.key("config", "arena")
        if not config_path.is_file():
            raise _fail(file, line, f"config: file not found: {config_path}")
        try:
            system = load_config(config_path)
        except ConfigError as exc:
            raise _fail(file, line, f"config: {exc}") from None
    else:
        system = load_config(None)
    symbols = [spec.symbol for spec in system.instruments]

    # start time
    start = arena.get("start", DEFAULT_START)
    start_ns = _start_ns(start)
    if start_ns is None:
        raise bad("start")

    # the background market
    market = arena.get("market", "bots")
    lobster_path: Path | None = None
    if not isinstance(market, str):
        raise bad("market")
    if market.startswith("lobster:"):
        from bots.arena.lobster import LobsterError, file_symbol

        line = lines.key("market", "arena")
        lobster_path = base / market.removeprefix("lobster:")
        if not lobster_path.is_file():
            raise _fail(file, line, f"market: LOBSTER file not found: {lobster_path}")
        try:
            symbol = file_symbol(lobster_path)
        except LobsterError as exc:
            raise _fail(file, line, f"market: {exc}") from None
        if symbol not in symbols:
            raise _fail(
                file,
                line,
                f"market: the LOBSTER file trades {symbol!r}, which the config does not list "
                f"(it lists {', '.join(symbols) or 'nothing'})",
            )
    elif market != "bots":
        raise bad("market")

    bots = _bots(file, raw.get("bots", []), lines, symbols, system, base)
    return ArenaConfig(
        path=file,
        system=system,
        market=market,
        lobster_path=lobster_path,
        start_ns=start_ns,
        bots=bots,
        **values,
    )


def _top_line(lines: _Lines, key: str) -> int:
    pattern = re.compile(rf"^\s*\[*\s*[\"']?{re.escape(key)}[\"']?\s*[\]=]")
    for number, line in enumerate(lines.lines, 1):
        if pattern.match(line):
            return number
    return 1


def _start_ns(value: Any) -> int | None:
    """Nanoseconds since the epoch for a TOML datetime or an ISO-8601 string (UTC if no
    offset); None when it is neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, date):
        return _start_ns(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return None


def _bots(
    file: Path,
    tables: Any,
    lines: _Lines,
    symbols: list[str],
    system: SystemConfig,
    base: Path,
) -> tuple[BotEntry, ...]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise _fail(file, _top_line(lines, "bots"), "bots must be tables: [[bots]]")
    if not tables:
        raise _fail(file, 1, "no bots: add at least one [[bots]] table")
    entries: list[BotEntry] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        where = lines.section("bots", index)
        header = where[0] if where else 1
        label = f"bot #{index + 1}"
        if isinstance(table.get("name"), str):
            label = f"bot {table['name']!r}"
        for key in table:
            if key not in BOT_KEYS:
                raise _fail(
                    file,
                    lines.key(key, "bots", index),
                    f"{label}: unknown key {key!r} (known: {', '.join(BOT_KEYS)})",
                )
        for key in ("name", "strategy", "symbol"):
            if key not in table:
                raise _fail(file, header, f"{label}: missing {key} ({BOT_KEYS[key]})")
            if not isinstance(table[key], str):
                raise _fail(
                    file, lines.key(key, "bots", index), f"{label}: {key}: expected {BOT_KEYS[key]}"
                )
        name = table["name"]
        label = f"bot {name!r}"
        line = lines.key("name", "bots", index)
        if not ACCOUNT_NAME.fullmatch(name):
            raise _fail(file, line, f"{label}: name: expected {BOT_KEYS['name']}")
        if name.lower().startswith(BACKGROUND_PREFIX) or name == system.insurance_account:
            raise _fail(
                file,
                line,
                f"{label}: name: reserved (lobster… is the background flow, "
                f"{system.insurance_account} the insurance fund)",
            )
        if name in seen:
            raise _fail(file, line, f"{label}: two bots share this name")
        seen.add(name)
        wanted = tuple(s.strip() for s in table["symbol"].split(",") if s.strip())
        unknown = [s for s in wanted if s not in symbols]
        if not wanted or unknown:
            raise _fail(
                file,
                lines.key("symbol", "bots", index),
                f"{label}: unknown symbol {', '.join(unknown) or repr(table['symbol'])} "
                f"(the config lists {', '.join(symbols)})",
            )
        params = table.get("params", {})
        if not isinstance(params, dict):
            raise _fail(
                file, lines.key("params", "bots", index), f"{label}: params: expected a table"
            )
        strategy = table["strategy"]
        strategy_line = lines.key("strategy", "bots", index)
        try:
            try:
                cls = load_strategy_class(strategy)
            except StrategyLoadError:
                if ":" not in strategy or base == Path.cwd().resolve():
                    raise
                cls = load_strategy_class(strategy, base)
        except StrategyLoadError as exc:
            raise _fail(file, strategy_line, f"{label}: {exc}") from None
        try:
            config = build_config(cls.Config, params, strategy_name=strategy)
        except ParamError as exc:
            bad_key = next((k for k in params if repr(k) in str(exc)), "params")
            raise _fail(file, lines.key(bad_key, "bots", index), f"{label}: {exc}") from None
        try:  # a strategy that cannot even be built is bad input, not a crash mid-round
            cls(config)
        except Exception as exc:
            raise _fail(
                file, strategy_line, f"{label}: {strategy}: {type(exc).__name__}: {exc}"
            ) from None
        entries.append(
            BotEntry(
                name=name,
                strategy=strategy,
                symbols=wanted,
                params=dict(params),
                strategy_class=cls,
                strategy_config=config,
                line=header,
            )
        )
    return tuple(entries)
