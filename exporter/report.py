"""``python -m exporter.report DIR``: a per-account summary and PNG charts from the exporter's
CSV files (PROTOCOL.md §5), with the csv module only.

Prints, per account: trades, volume (lots and notional), fees, realized PnL, final PnL,
max drawdown and liquidations; writes ``equity.png`` (equity curve per account) and
``price_<SYMBOL>.png`` (price path over traded volume) into DIR (or ``--out``).

Definitions (documented in docs/analysis.md):

- starting equity: the first performance row's ``cash - realized_pnl + fees`` (cash already
  holds realized PnL and fees); final PnL = last equity − starting equity;
- max drawdown: the largest fall of equity from a running peak, over the performance rows;
- liquidations: distinct liquidation orders of the account (liquidation trades where it was
  the aggressor);
- fees: the sum of its ``buy_fee``/``sell_fee`` in trades.csv (negative: net rebates).

Money prints like in the CSV files (PROTOCOL.md §2): the shortest decimal, rounded half-even
to at most 8 decimals where it prints (the sums and differences here are float arithmetic),
with thousands separated by commas (``1,505.0``, ``-0.4``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from exchange.protocol.display import decimal_text

MAX_POINTS = 4000
"""Points per plotted series; longer series are thinned evenly."""


@dataclass
class AccountSummary:
    account: str
    trades: int = 0
    volume: int = 0
    notional: float = 0.0
    fees: float = 0.0
    realized_pnl: float = 0.0
    start_equity: float | None = None
    final_equity: float | None = None
    peak: float | None = None
    max_drawdown: float = 0.0
    max_drawdown_pct: float = 0.0
    liquidation_orders: set[str] = field(default_factory=set)

    @property
    def final_pnl(self) -> float:
        if self.start_equity is None or self.final_equity is None:
            return 0.0
        return self.final_equity - self.start_equity

    @property
    def liquidations(self) -> int:
        return len(self.liquidation_orders)


@dataclass
class Report:
    accounts: dict[str, AccountSummary] = field(default_factory=dict)
    equity: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    prices: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)
    """Per symbol: (ts_ns, price, qty) of every trade."""

    def account(self, name: str) -> AccountSummary:
        summary = self.accounts.get(name)
        if summary is None:
            summary = self.accounts[name] = AccountSummary(name)
        return summary


class ReportError(Exception):
    """A CSV file is missing or lacks a column the report needs."""


def _rows(path: Path, needed: tuple[str, ...]) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise ReportError(f"{path} does not exist (is DIR the exporter's --out directory?)")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ReportError(f"{path}: missing columns {', '.join(missing)}")
        yield from reader


TRADE_COLUMNS: tuple[str, ...] = (
    "ts_ns", "symbol", "price", "qty", "aggressor", "buy_account", "sell_account",
    "buy_order_id", "sell_order_id", "buy_fee", "sell_fee", "liquidation",
)  # fmt: skip
PERFORMANCE_COLUMNS = ("ts_ns", "account", "cash", "realized_pnl", "fees", "equity")


def build_report(directory: Path) -> Report:
    """Read ``trades.csv`` and ``performance.csv`` from ``directory``. Raises ReportError."""
    report = Report()
    for row in _rows(directory / "trades.csv", TRADE_COLUMNS):
        ts, price, qty = int(row["ts_ns"]), float(row["price"]), int(row["qty"])
        report.prices.setdefault(row["symbol"], []).append((ts, price, qty))
        for side in ("buy", "sell"):
            summary = report.account(row[f"{side}_account"])
            summary.trades += 1
            summary.volume += qty
            summary.notional += price * qty
            summary.fees += float(row[f"{side}_fee"] or 0)
        if row["liquidation"].lower() == "true":
            side = row["aggressor"]
            report.account(row[f"{side}_account"]).liquidation_orders.add(row[f"{side}_order_id"])
    for row in _rows(directory / "performance.csv", PERFORMANCE_COLUMNS):
        summary = report.account(row["account"])
        equity = float(row["equity"])
        if summary.start_equity is None:
            summary.start_equity = (
                float(row["cash"]) - float(row["realized_pnl"]) + float(row["fees"])
            )
            summary.peak = max(summary.start_equity, equity)
        summary.final_equity = equity
        summary.realized_pnl = float(row["realized_pnl"])
        summary.peak = max(summary.peak or equity, equity)
        drawdown = summary.peak - equity
        if drawdown > summary.max_drawdown:
            summary.max_drawdown = drawdown
            summary.max_drawdown_pct = drawdown / summary.peak if summary.peak > 0 else 0.0
        report.equity.setdefault(row["account"], []).append((int(row["ts_ns"]), equity))
    return report


def money(value: float) -> str:
    """An amount for the summary: shortest decimal, at most 8 decimals, thousands grouped."""
    return decimal_text(float(value), grouping=True)


def format_summary(report: Report) -> str:
    """The summary table, accounts by final PnL (best first)."""
    header = (
        f"{'account':16} {'trades':>7} {'volume':>9} {'notional':>15} {'fees':>11} "
        f"{'realized':>13} {'final pnl':>13} {'max dd':>12} {'dd %':>6} {'liq':>4}"
    )
    lines = [header, "-" * len(header)]
    ranked = sorted(report.accounts.values(), key=lambda s: (-s.final_pnl, s.account))
    for s in ranked:
        lines.append(
            f"{s.account[:16]:16} {s.trades:>7} {s.volume:>9} {money(s.notional):>15} "
            f"{money(s.fees):>11} {money(s.realized_pnl):>13} {money(s.final_pnl):>13} "
            f"{money(s.max_drawdown):>12} {s.max_drawdown_pct:>6.1%} {s.liquidations:>4}"
        )
    symbols = ", ".join(
        f"{sym}: {len(rows)} trades, {sum(q for _, _, q in rows)} lots"
        for sym, rows in sorted(report.prices.items())
    )
    lines.append("")
    lines.append(f"symbols: {symbols or 'no trades'}")
    return "\n".join(lines)


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    return [points[int(i * step)] for i in range(MAX_POINTS)] + [points[-1]]


def _when(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)


def write_charts(report: Report, out: Path) -> list[Path]:
    """Write the PNG charts into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    fig, (ax, pnl) = plt.subplots(
        2, 1, figsize=(11, 8), dpi=100, sharex=True, gridspec_kw={"height_ratios": [1, 1]}
    )
    for account, points in sorted(report.equity.items()):
        thinned = _thin(points)
        times = [_when(t) for t, _ in thinned]
        ax.plot(times, [e for _, e in thinned], label=account, lw=1.2)
        start = report.accounts[account].start_equity or 0.0
        pnl.plot(times, [e - start for _, e in thinned], label=account, lw=1.2)
    ax.set_title("Equity per account")
    ax.set_ylabel("equity")
    ax.set_yscale("symlog", linthresh=1000)
    pnl.set_title("Equity change since the account's first row (PnL)")
    pnl.set_ylabel("PnL")
    pnl.set_xlabel("time (UTC)")
    pnl.axhline(0, color="black", lw=0.6)
    for axis in (ax, pnl):
        axis.grid(alpha=0.3)
    if report.equity:
        pnl.legend(loc="upper left", fontsize="small", ncol=4)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = out / "equity.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    for symbol, rows in sorted(report.prices.items()):
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(11, 6), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        thinned = _thin([(t, p) for t, p, _ in rows])
        top.plot([_when(t) for t, _ in thinned], [p for _, p in thinned], lw=1.0, color="C0")
        top.set_title(f"{symbol}: price and traded volume")
        top.set_ylabel("price")
        top.grid(alpha=0.3)
        times, volumes = _volume_bins([(t, q) for t, _, q in rows])
        width = (times[1] - times[0]) * 0.9 if len(times) > 1 else None
        bottom.bar(times, volumes, width=width, color="C1")
        bottom.set_ylabel("volume")
        bottom.set_xlabel("time (UTC)")
        bottom.grid(alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        path = out / f"price_{_safe(symbol)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _volume_bins(trades: list[tuple[int, int]], bins: int = 60) -> tuple[list[datetime], list[int]]:
    """Traded quantity summed into ``bins`` equal time intervals."""
    first, last = trades[0][0], trades[-1][0]
    span = max(last - first, 1)
    totals = [0] * bins
    for ts, qty in trades:
        totals[min(bins - 1, (ts - first) * bins // span)] += qty
    return [_when(first + span * (2 * i + 1) // (2 * bins)) for i in range(bins)], totals


def _safe(symbol: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in symbol)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.report",
        description="Summarise the exporter's trades.csv and performance.csv; draw charts.",
    )
    parser.add_argument("dir", help="the exporter's output directory (holds the CSV files)")
    parser.add_argument("--out", default=None, help="where to write the PNGs (default: DIR)")
    parser.add_argument("--no-charts", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    try:
        report = build_report(directory)
    except (ReportError, ValueError, KeyError) as exc:
        print(f"python -m exporter.report: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(report))
    if not args.no_charts:
        for path in write_charts(report, Path(args.out) if args.out else directory):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
