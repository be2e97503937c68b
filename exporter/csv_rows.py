"""The rows of trades.csv and performance.csv, exactly as PROTOCOL.md §5 lists them (pure).

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
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable

from exchange.protocol.display import decimal_text
from exchange.protocol.messages import AccountUpdate, Fill, Position

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
