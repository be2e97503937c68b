"""The one TOML file that configures the whole system (``--config FILE``): its schema is part
of the public contract, so it lives here beside the wire messages.

Every section has defaults, so an empty file is valid; the shipped ``exchange/default.toml``
is what ``honcho start`` uses. ``load_config(None)`` loads that default. Whether instruments
are representable by the core is checked by the engine when it builds its core.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "default.toml"


class CircuitBreaker(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An instrument's circuit breaker (PROTOCOL §3.2): when the last trade moves more than
    ``move`` (a fraction) from the lowest or highest trade of the last ``window_s`` seconds,
    the instrument halts for ``halt_s`` seconds, then reopens through an auction of
    ``auction_s`` seconds (0: straight to open)."""

    move: float
    window_s: float = 60.0
    halt_s: float = 60.0
    auction_s: float = 10.0


class InstrumentSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An instrument as configured (display units), e.g. from the ``[[instruments]]`` TOML table."""

    symbol: str
    tick_size: float
    reference_price: float
    lot_size: float = 1.0
    initial_margin: float = 0.1
    maintenance_margin: float = 0.05
    max_order_qty: int = 1_000_000
    max_position: int = 10_000_000
    price_band: float = 0.1
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    circuit_breaker: CircuitBreaker | None = None


class AccountSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An account that exists from the start (e.g. a ``[[accounts]]`` TOML table)."""

    name: str
    cash: float
    api_key: str | None = None
    max_open_orders: int | None = None
    system: bool = False
    """A system account (like the insurance fund): rounds leave it alone (no cancels, no
    reset) and the leaderboard omits it (PROTOCOL §3.3)."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class EngineSection(_Section, frozen=True):
    command_port: int = 9000
    event_port: int = 9002
    data_dir: str = "./data"
    mark_interval_ms: int = 1000
    """How often the engine publishes mark-to-market ``account_update``s (a journaled
    ``revalue`` command)."""
    leaderboard_interval_ms: int = 1000
    """How often the engine publishes the round's ``leaderboard`` (a journaled
    ``rank_accounts`` command; 0 disables it)."""
    clock_interval_ms: int = 50
    """How often the engine checks the GTD deadlines; when one is due it submits a journaled
    ``advance_time`` command (0 disables it: GTD orders then never expire)."""
    event_history: int = 1_000_000
    """How many recent events the event port serves from memory."""
    fsync: Literal["batch", "always", "none"] = "batch"
    """When the journal is made durable. Every acknowledgement leaves after its command is
    written to the journal (so it survives a crash of the engine, even ``kill -9``).
    ``batch``: also fsync in the background at most every ``fsync_interval_ms`` (a power cut
    loses at most that much); ``always``: acknowledge only after an fsync covering the command
    (group commit; survives a power cut); ``none``: never fsync (the OS writes back)."""
    fsync_interval_ms: float = 5.0
    """``batch``: the most often the journal is fsynced while commands arrive."""
    snapshot_interval_s: float = 60.0
    """Snapshot at least this often while commands arrive (and at a clean shutdown); 0 = only
    by count and at shutdown."""
    snapshot_every_commands: int = 100_000
    """Also snapshot after this many journaled commands, which bounds the journal tail a
    restart replays (about 1.5-2 s at 100,000); 0 = only by time and at shutdown."""
    keep_snapshots: int = 3


class GatewaySection(_Section, frozen=True):
    port: int = 9001
    rest_port: int = 9003
    """REST order entry (PROTOCOL §6)."""
    engine: str = "ws://127.0.0.1:9000"
    allow_register: bool = True
    register_cash: float = 100_000.0
    """Largest starting cash a ``register`` request may ask for."""
    orders_per_second: float = 200.0
    burst: int = 400
    max_frame_bytes: int = 65536


class MarketDataSection(_Section, frozen=True):
    port: int = 9010
    upstream: str = "ws://127.0.0.1:9002"
    monitor_tokens: list[str] = []
    heartbeat_ms: int = 1000
    max_buffered_bytes: int = 4 * 1024 * 1024
    """A subscriber whose unsent data exceeds this is a slow consumer and is cut off."""
    trade_history: int = 1000


class ExporterSection(_Section, frozen=True):
    upstream: str = "ws://127.0.0.1:9002"
    out: str = "./out"
    port: int | None = None
    """``/healthz`` and ``/metrics`` port; None (the default): the exporter listens on nothing."""
    flush_ms: int = 500
    performance_interval_ms: int = 0
    """0: one performance.csv row per account per change; N: at most one per account per N ms."""


class AdminSection(_Section, frozen=True):
    api_keys: list[str] = []
    """API keys of operator sessions (PROTOCOL §3.3): ``set_status``, ``publish_news``,
    ``start_round``; such a session has no account and cannot trade."""


class BotDefaults(_Section, frozen=True):
    gateway: str = "ws://127.0.0.1:9001"
    marketdata: str = "ws://127.0.0.1:9010"


class SystemConfig(_Section, frozen=True):
    """The whole file."""

    instruments: list[InstrumentSpec] = []
    accounts: list[AccountSpec] = []
    max_open_orders: int = 200
    insurance_account: str = "insurance_fund"
    insurance_fund_cash: float = 1_000_000.0
    done_order_memory: int = 100_000
    engine: EngineSection = EngineSection()
    gateway: GatewaySection = GatewaySection()
    marketdata: MarketDataSection = MarketDataSection()
    exporter: ExporterSection = ExporterSection()
    bots: BotDefaults = BotDefaults()
    admin: AdminSection = AdminSection()


class ConfigError(ValueError):
    """The configuration file is missing, not TOML, or does not fit the schema."""


def load_config(path: str | Path | None) -> SystemConfig:
    """Load and validate ``path`` (the shipped default when None). Raises ConfigError."""
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        raw = tomllib.loads(file.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {file} is not valid TOML: {exc}") from exc
    try:
        config = msgspec.convert(raw, SystemConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config {file}: {exc}") from exc
    return config
