"""A tournament's standings from the exporter's files (pure but for reading and writing files).

A round of the tournament is a span of the engine's ``seq``: it begins at its
``round_started`` (``start_seq``, exclusive: the accounts' reset ``account_update``s come right
after it) and ends at its final ``leaderboard`` (``end_seq``, exclusive: the last standings the
relay gave once the round's seconds were up). ``read_rounds`` cuts ``trades.csv`` and
``performance.csv`` into those spans in one pass over each file; ``round_rows`` scores a span
with the arena's own code (``bots.arena.scoring``), so the columns and rules are those of
PROTOCOL §8:

- ``pnl``: the account's last ``equity`` in the span (performance.csv) − the round's cash;
  ``fees``: its ``fees`` there (reset by the round); ``max_drawdown`` and ``sharpe``: over the
  equities of its rows, the round's cash first;
- ``trades``/``volume``: trades.csv rows of the span the account is on (a side each);
- ``liquidations``: distinct instants (``ts_ns``) at which a liquidation trade closed a position
  of the account (``liquidation`` true, the account on the aggressor's side);
- ``strategy`` "" (the venue does not say), ``status`` ``ok``, ``errors`` 0.

Accounts ranked: every account with a performance.csv row in the span except the config's
system accounts (the insurance fund and ``system = true``), as on the engine's leaderboard.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

from bots.arena.output import aligned, write_leaderboard
from bots.arena.scoring import AccountRecord, Row, overall_rows, rank_rows, round_row
from exchange.protocol.messages import Leaderboard
from exporter.csv_rows import PERFORMANCE_HEADER, TRADES_HEADER, header_line, parse_line
from exporter.state import PERFORMANCE_FILE, TRADES_FILE, read_state

assert TRADES_HEADER.index("seq") == PERFORMANCE_HEADER.index("seq") == 2  # read_rounds


@dataclass(frozen=True)
class RoundSpan:
    """One round of the tournament as the venue ran it."""

    index: int
    """The tournament's round, from 1 (``round`` in leaderboard.csv; named ``round-K``)."""
    venue_round: int
    """The venue's round number (``round_started.round``)."""
    name: str
    cash: float
    start_seq: int
    start_ns: int
    end_seq: int
    end_ns: int
    final: Leaderboard
    """The relay's last standings of the round (``seq`` = ``end_seq``)."""

    def summary(self) -> dict[str, object]:
        """This span as JSON (``rounds.json``)."""
        return {
            "round": self.index,
            "venue_round": self.venue_round,
            "name": self.name,
            "cash": self.cash,
            "start_seq": self.start_seq,
            "start_ns": self.start_ns,
            "end_seq": self.end_seq,
            "end_ns": self.end_ns,
            "leaderboard": [
                {
                    "account": row.account,
                    "equity": row.equity,
                    "pnl": row.pnl,
                    "return_pct": row.return_pct,
                    "max_drawdown": row.max_drawdown,
                    "trades": row.trades,
                    "liquidations": row.liquidations,
                }
                for row in self.final.rows
            ],
        }


@dataclass
class RoundFiles:
    """The exporter's rows of one span: the raw lines (for ``round-K/``) and their fields."""

    trades: list[list[str]] = field(default_factory=list)
    performance: list[list[str]] = field(default_factory=list)
    trade_lines: list[str] = field(default_factory=list)
    performance_lines: list[str] = field(default_factory=list)


def exported_seq(exporter_out: Path) -> int | None:
    """The seq up to which the exporter's files in ``exporter_out`` are complete (its state
    file), or None when there is none."""
    return read_state(exporter_out)


def read_rounds(exporter_out: Path, spans: Sequence[RoundSpan]) -> list[RoundFiles]:
    """Each span's rows of ``trades.csv`` and ``performance.csv`` (a row belongs to a span when
    start_seq < seq < end_seq; ``spans`` in seq order). Raises OSError.

    The files' rows are in seq order, so reading stops after the last span; a row's seq is
    read from its third field without parsing the rest (``ts`` and ``ts_ns`` hold no comma),
    and only the rows of a span are parsed."""
    result = [RoundFiles() for _ in spans]
    if not spans:
        return result
    first, last = spans[0].start_seq, spans[-1].end_seq
    for name, header in ((TRADES_FILE, TRADES_HEADER), (PERFORMANCE_FILE, PERFORMANCE_HEADER)):
        with (exporter_out / name).open(encoding="utf-8", newline="") as handle:
            handle.readline()  # the header
            for line in handle:
                if not line.endswith("\n"):
                    break  # a row being written right now: after every finished round
                try:
                    seq = int(line.split(",", 3)[2])
                except (IndexError, ValueError):
                    continue
                if seq <= first:
                    continue
                if seq >= last:
                    break
                for span, files in zip(spans, result, strict=True):
                    if span.start_seq < seq < span.end_seq:
                        fields = parse_line(line, len(header))
                        if fields is None:
                            break
                        if name == TRADES_FILE:
                            files.trades.append(fields)
                            files.trade_lines.append(line)
                        else:
                            files.performance.append(fields)
                            files.performance_lines.append(line)
                        break
    return result


def round_rows(
    span: RoundSpan,
    files: RoundFiles,
    system_accounts: Iterable[str],
    accounts: Set[str] | None = None,
) -> list[Row]:
    """The span's leaderboard rows, ranked (see the module docstring); ``accounts``: rank
    only these (None: all)."""
    skip = set(system_accounts)
    last: dict[str, dict[str, str]] = {}
    records: dict[str, AccountRecord] = {}
    for fields in files.performance:
        row = dict(zip(PERFORMANCE_HEADER, fields, strict=True))
        account = row["account"]
        if account in skip or (accounts is not None and account not in accounts):
            continue
        record = records.setdefault(account, AccountRecord())
        record.equity.append((int(row["ts_ns"]), float(row["equity"])))
        last[account] = row
    liquidated: dict[str, set[int]] = {}
    for fields in files.trades:
        trade = dict(zip(TRADES_HEADER, fields, strict=True))
        qty = int(trade["qty"])
        buyer, seller = trade["buy_account"], trade["sell_account"]
        for account in {buyer, seller}:
            tally = records.get(account)
            if tally is not None:
                tally.trades += 1
                tally.volume += qty
        if trade["liquidation"] == "true":
            taker = buyer if trade["aggressor"] == "buy" else seller
            liquidated.setdefault(taker, set()).add(int(trade["ts_ns"]))
    end_ns = max([span.end_ns, *(ts for r in records.values() for ts, _ in r.equity)])
    rows = []
    for account, record in records.items():
        record.liquidations = len(liquidated.get(account, ()))
        final = last[account]
        rows.append(
            round_row(
                span.index,
                account,
                "",
                crashed=False,
                cash=span.cash,
                final_equity=float(final["equity"]),
                fees=float(final["fees"]),
                record=record,
                errors=0,
                start_ns=span.start_ns,
                end_ns=end_ns,
            )
        )
    return rank_rows(rows)


def leaderboard_rows(
    spans: Sequence[RoundSpan],
    files: Sequence[RoundFiles],
    system_accounts: Iterable[str],
    accounts: Set[str] | None = None,
) -> list[Row]:
    """Every span's rows, then the ``all`` rows (PROTOCOL §8)."""
    skip = list(system_accounts)
    rows: list[Row] = []
    for span, span_files in zip(spans, files, strict=True):
        rows.extend(round_rows(span, span_files, skip, accounts))
    if spans:
        cash = math.fsum(span.cash for span in spans) / len(spans)
        rows.extend(overall_rows(rows, cash, len(spans)))
    return rows


def write_results(
    out: Path, spans: Sequence[RoundSpan], files: Sequence[RoundFiles], rows: Sequence[Row]
) -> None:
    """``leaderboard.csv`` and ``leaderboard.json`` (the arena's writer), ``rounds.json`` (each
    span and its final relay leaderboard) and ``round-K/trades.csv``, ``performance.csv`` (the
    exporter's lines of the span, verbatim)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    for span, span_files in zip(spans, files, strict=True):
        folder = out / f"round-{span.index}"
        folder.mkdir(exist_ok=True)
        for name, header, lines in (
            (TRADES_FILE, TRADES_HEADER, span_files.trade_lines),
            (PERFORMANCE_FILE, PERFORMANCE_HEADER, span_files.performance_lines),
        ):
            text = header_line(header) + "".join(lines)
            (folder / name).write_text(text, encoding="utf-8", newline="")
    write_leaderboard(out, rows)
    summary = [span.summary() for span in spans]
    (out / "rounds.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


def relay_table(board: Leaderboard, accounts: Set[str] | None = None) -> str:
    """The relay's standings as text (printed at the end of each round); ``accounts``: only
    these (ranked among themselves)."""
    shown = [r for r in board.rows if accounts is None or r.account in accounts]
    headers = ["rank", "account", "equity", "pnl", "return %", "max dd", "trades", "liq"]
    body = [
        [
            str(rank),
            row.account,
            f"{row.equity:,.2f}",
            f"{row.pnl:,.2f}",
            f"{row.return_pct:.3f}",
            f"{row.max_drawdown:,.2f}",
            str(row.trades),
            str(row.liquidations),
        ]
        for rank, row in enumerate(shown, 1)
    ]
    return aligned(headers, body, left={1})
