"""The rows of the exporter's CSV files (pure): trades.csv and performance.csv exactly as
PROTOCOL.md §5 lists them; news.csv, rounds.csv and status.csv as docs/protocol.md adds them.

Formatting rules (documented in docs/processes/exporter.md):

- ``ts``: ISO-8601 UTC with nanoseconds and ``Z`` (``2024-05-01T12:00:00.123456789Z``);
  ``ts_ns`` the same instant as integer nanoseconds since the epoch.
- Numbers: integers as integers; prices and money as the shortest decimal, rounded
  half-even to at most 8 decimals (``101.25``, ``-0.0303``, ``19016.4045``; PROTOCOL.md §2
  "Money is exact"), never in exponent notation. The engine sends them already rounded
  (prices at the tick's decimals), so this only guards the printing.
- Booleans ``true``/``false``.
- ``positions``: ``SYM:qty@avg_px`` joined by ``;``, symbols sorted, flat positions left out
  (empty when flat everywhere).
- Fields are quoted by the csv module only when they need it (an account name with a comma).
- Every row is one physical line (recovery reads the files' tails line by line): a line
  break (``\r\n``, ``\r``, ``\n``) inside a news ``headline`` or ``body`` becomes one space.
- news.csv: ``symbols`` joined by ``;``; ``shock`` and ``body`` empty when null.
- status.csv: ``until`` in integer nanoseconds like ``ts_ns``, empty when null.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable

from exchange.protocol.display import decimal_text
from exchange.protocol.messages import (
    AccountUpdate,
    Fill,
    MarketStatus,
    News,
    Position,
    RoundStarted,
)

TRADES_HEADER: tuple[str, ...] = (
    "ts",
    "ts_ns",
    "seq",
    "trade_id",
    "symbol",
    "price",
    "qty",
    "aggressor",
    "buy_account",
    "sell_account",
    "buy_order_id",
    "sell_order_id",
    "buy_fee",
    "sell_fee",
    "liquidation",
)
PERFORMANCE_HEADER: tuple[str, ...] = (
    "ts",
    "ts_ns",
    "seq",
    "account",
    "cash",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "equity",
    "initial_margin",
    "maintenance_margin",
    "positions",
)
NEWS_HEADER: tuple[str, ...] = (
    "ts",
    "ts_ns",
    "seq",
    "news_id",
    "headline",
    "symbols",
    "sentiment",
    "shock",
    "body",
)
ROUNDS_HEADER: tuple[str, ...] = ("ts", "ts_ns", "seq", "round", "name", "cash")
STATUS_HEADER: tuple[str, ...] = ("ts", "ts_ns", "seq", "symbol", "status", "reason", "until")
SEQ_COLUMN = 2
TS_NS_COLUMN = 1

_second_cache: list[object] = [None, ""]


def iso_ts(ts_ns: int) -> str:
    """``2024-05-01T12:00:00.123456789Z`` for integer nanoseconds since the epoch (UTC)."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    if _second_cache[0] != seconds:
        _second_cache[0] = seconds
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{_second_cache[1]}.{nanos:09d}Z"


def number(value: float | int) -> str:
    """A float rounded half-even to at most 8 decimals, as the shortest decimal, without
    exponent (``0.0`` for zero); ints unchanged."""
    return decimal_text(value)


def boolean(value: bool) -> str:
    return "true" if value else "false"


def positions_field(positions: Iterable[Position]) -> str:
    """``AAPL:10@190.5;MSFT:-5@420.0``: open positions only, by symbol (``avg_px`` printed
    like every other number: at most 8 decimals)."""
    return ";".join(
        f"{p.symbol}:{p.qty}@{number(p.avg_px)}"
        for p in sorted(positions, key=lambda p: p.symbol)
        if p.qty
    )


def trade_row(fill: Fill) -> list[str]:
    """One trades.csv row (TRADES_HEADER order) for an engine ``fill`` event."""
    return [
        iso_ts(fill.ts),
        str(fill.ts),
        str(fill.seq),
        str(fill.trade_id),
        fill.symbol,
        number(fill.price),
        str(fill.qty),
        fill.aggressor,
        fill.buy_account,
        fill.sell_account,
        str(fill.buy_order_id),
        str(fill.sell_order_id),
        number(fill.buy_fee),
        number(fill.sell_fee),
        boolean(fill.liquidation),
    ]


def performance_row(update: AccountUpdate) -> list[str]:
    """One performance.csv row (PERFORMANCE_HEADER order) for an ``account_update`` event."""
    ts = update.ts or 0
    return [
        iso_ts(ts),
        str(ts),
        str(update.seq),
        update.account,
        number(update.cash),
        number(update.realized_pnl),
        number(update.unrealized_pnl),
        number(update.fees),
        number(update.equity),
        number(update.initial_margin),
        number(update.maintenance_margin),
        positions_field(update.positions),
    ]


def one_line(text: str | None) -> str:
    """``text`` on one line: each line break (``\r\n``, ``\r`` or ``\n``) becomes a space;
    None becomes empty."""
    if not text:
        return ""
    if "\n" in text or "\r" in text:
        return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return text


def news_row(news: News) -> list[str]:
    """One news.csv row (NEWS_HEADER order) for a ``news`` event."""
    return [
        iso_ts(news.ts),
        str(news.ts),
        str(news.seq),
        str(news.news_id),
        one_line(news.headline),
        ";".join(news.symbols),
        number(news.sentiment),
        "" if news.shock is None else number(news.shock),
        one_line(news.body),
    ]


def round_row(event: RoundStarted) -> list[str]:
    """One rounds.csv row (ROUNDS_HEADER order) for a ``round_started`` event."""
    return [
        iso_ts(event.ts),
        str(event.ts),
        str(event.seq),
        str(event.round),
        one_line(event.name),
        number(event.cash),
    ]


def status_row(event: MarketStatus) -> list[str]:
    """One status.csv row (STATUS_HEADER order) for a ``market_status`` event."""
    return [
        iso_ts(event.ts),
        str(event.ts),
        str(event.seq),
        event.symbol,
        event.status,
        event.reason,
        "" if event.until is None else str(event.until),
    ]


def format_rows(rows: Iterable[Iterable[str]]) -> str:
    """CSV text of ``rows``, each ending in ``\\n``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def header_line(header: tuple[str, ...]) -> str:
    return ",".join(header) + "\n"


def parse_line(line: str, columns: int) -> list[str] | None:
    """The fields of one complete CSV line when it is a well-formed row of ``columns`` fields
    with integer ``ts_ns`` and ``seq``; else None."""
    try:
        fields = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    if len(fields) != columns:
        return None
    try:
        int(fields[TS_NS_COLUMN])
        int(fields[SEQ_COLUMN])
    except ValueError:
        return None
    return fields
