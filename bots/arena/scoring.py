"""What a round keeps (``RoundRecorder``) and the leaderboard's numbers (pure).

Definitions (PROTOCOL §8, docs/arena.md):

- ``pnl``: final equity − starting cash (open positions marked at the mark price, not
  closed); ``return_pct`` = pnl / cash × 100.
- ``sharpe``: mean / standard deviation (population) of the bot's 1-minute equity returns
  over the round (equity sampled at every whole minute from the start, and at the end), not
  annualised; 0 when the standard deviation is 0 (flat) or there are no returns.
- ``max_drawdown``: the largest peak-to-trough fall of equity, in money, over every equity
  the bot's account reported (each ``account_update``) plus the start and the end.
- ``fees``: the account's fees at the end (rebates negative); ``trades``: fills the account
  took part in; ``volume``: their lots; ``liquidations``: ``liquidation`` events of the
  account; ``errors``: exceptions its strategy raised.
- Rows per round are ranked by pnl (highest first; ties by bot name). ``all`` rows: sums of
  pnl, fees, trades, volume, liquidations, errors; return over all rounds' cash; mean sharpe;
  largest drawdown; ``crashed`` if the bot crashed in any round.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from exchange.protocol.messages import AccountUpdate, Fill, Liquidation
from exporter.writer import PerformanceSampler

MINUTE_NS = 60_000_000_000

LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "round",
    "rank",
    "bot",
    "strategy",
    "status",
    "pnl",
    "return_pct",
    "sharpe",
    "max_drawdown",
    "fees",
    "trades",
    "volume",
    "liquidations",
    "errors",
)


@dataclass
class AccountRecord:
    """One bot account's tally in a round."""

    trades: int = 0
    volume: int = 0
    liquidations: int = 0
    equity: list[tuple[int, float]] = field(default_factory=list)
    """(ts, equity) of every account update, in order."""


class RoundRecorder:
    """Collects a round's fills (every one: trades.csv), the bot accounts' updates
    (performance.csv, sampled as the exporter's ``performance_interval_ms`` says) and each bot
    account's tally. ``accounts``: the bot accounts (others are not tallied)."""

    def __init__(self, accounts: Iterable[str], performance_interval_ms: int = 0) -> None:
        self.records: dict[str, AccountRecord] = {name: AccountRecord() for name in accounts}
        self.fills: list[Fill] = []
        self.updates: list[AccountUpdate] = []
        self._sampler = PerformanceSampler(performance_interval_ms * 1_000_000)

    def fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        records = self.records
        buyer = records.get(fill.buy_account)
        if buyer is not None:
            buyer.trades += 1
            buyer.volume += fill.qty
        seller = records.get(fill.sell_account)
        if seller is not None and fill.sell_account != fill.buy_account:
            seller.trades += 1
            seller.volume += fill.qty

    def account_update(self, update: AccountUpdate) -> None:
        record = self.records.get(update.account)
        if record is None:
            return
        ts = update.ts or 0
        record.equity.append((ts, update.equity))
        if self._sampler.accept(update.account, ts):
            self.updates.append(update)

    def liquidation(self, event: Liquidation) -> None:
        record = self.records.get(event.account)
        if record is not None:
            record.liquidations += 1


@dataclass(frozen=True)
class Row:
    """One leaderboard row (LEADERBOARD_COLUMNS); ``round`` is a number or ``"all"``."""

    round: int | str
    rank: int
    bot: str
    strategy: str
    status: str
    pnl: float
    return_pct: float
    sharpe: float
    max_drawdown: float
    fees: float
    trades: int
    volume: int
    liquidations: int
    errors: int


def minute_samples(
    series: Sequence[tuple[int, float]],
    start_ns: int,
    end_ns: int,
    start_equity: float,
    step_ns: int = MINUTE_NS,
) -> list[float]:
    """Equity at the start, at every whole minute (``step_ns``) after it, and at ``end_ns``
    (if not on a step): the last reported value at or before each instant (``series`` in
    time order)."""
    times = list(range(start_ns, end_ns + 1, step_ns))
    if times[-1] != end_ns:
        times.append(end_ns)
    out: list[float] = []
    value = start_equity
    i, n = 0, len(series)
    for t in times:
        while i < n and series[i][0] <= t:
            value = series[i][1]
            i += 1
        out.append(value)
    return out


def sharpe(samples: Sequence[float]) -> float:
    """Mean / population standard deviation of the simple returns between samples; 0 when
    flat, when there are no returns, or when an equity is not positive."""
    returns = []
    for before, after in itertools.pairwise(samples):
        if before <= 0:
            return 0.0
        returns.append((after - before) / before)
    if not returns:
        return 0.0
    mean = math.fsum(returns) / len(returns)
    variance = math.fsum((r - mean) ** 2 for r in returns) / len(returns)
    std = math.sqrt(variance)
    if std <= 1e-15:
        return 0.0
    return mean / std


def max_drawdown(values: Iterable[float]) -> float:
    """The largest fall from a running peak (0 when equity never fell)."""
    peak = -math.inf
    worst = 0.0
    for value in values:
        if value > peak:
            peak = value
        elif peak - value > worst:
            worst = peak - value
    return worst


def rank_rows(rows: list[Row]) -> list[Row]:
    """``rows`` ordered by pnl (highest first, ties by bot name), ranks 1..n set."""
    ordered = sorted(rows, key=lambda r: (-r.pnl, r.bot))
    return [_with_rank(row, rank) for rank, row in enumerate(ordered, 1)]


def _with_rank(row: Row, rank: int) -> Row:
    from dataclasses import replace

    return replace(row, rank=rank)


def round_row(
    round_no: int,
    bot: str,
    strategy: str,
    *,
    crashed: bool,
    cash: float,
    final_equity: float,
    fees: float,
    record: AccountRecord,
    errors: int,
    start_ns: int,
    end_ns: int,
) -> Row:
    """One bot's (unranked) row for a round."""
    series = [(start_ns, cash), *record.equity, (end_ns, final_equity)]
    pnl = final_equity - cash
    return Row(
        round=round_no,
        rank=0,
        bot=bot,
        strategy=strategy,
        status="crashed" if crashed else "ok",
        pnl=_money(pnl),
        return_pct=_ratio(pnl / cash * 100),
        sharpe=_ratio(sharpe(minute_samples(series, start_ns, end_ns, cash))),
        max_drawdown=_money(max_drawdown(v for _, v in series)),
        fees=_money(fees),
        trades=record.trades,
        volume=record.volume,
        liquidations=record.liquidations,
        errors=errors,
    )


def overall_rows(rows: Sequence[Row], cash: float, rounds: int) -> list[Row]:
    """The ``all`` rows (see the module docstring), ranked."""
    by_bot: dict[str, list[Row]] = {}
    for row in rows:
        by_bot.setdefault(row.bot, []).append(row)
    totals = []
    for bot, mine in by_bot.items():
        pnl = math.fsum(r.pnl for r in mine)
        totals.append(
            Row(
                round="all",
                rank=0,
                bot=bot,
                strategy=mine[0].strategy,
                status="crashed" if any(r.status == "crashed" for r in mine) else "ok",
                pnl=_money(pnl),
                return_pct=_ratio(pnl / (cash * rounds) * 100),
                sharpe=_ratio(math.fsum(r.sharpe for r in mine) / len(mine)),
                max_drawdown=_money(max(r.max_drawdown for r in mine)),
                fees=_money(math.fsum(r.fees for r in mine)),
                trades=sum(r.trades for r in mine),
                volume=sum(r.volume for r in mine),
                liquidations=sum(r.liquidations for r in mine),
                errors=sum(r.errors for r in mine),
            )
        )
    return rank_rows(totals)


def _money(value: float) -> float:
    """Money as the exporter prints it: rounded half-even to 8 decimals (``-0.0`` → 0)."""
    return round(value, 8) + 0.0


def _ratio(value: float) -> float:
    return round(value, 6) + 0.0
