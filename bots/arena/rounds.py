"""Running the rounds of an arena: a fresh venue per round, the bots, the scoring.

``run_round`` is one round (fresh accounts and books, seeds derived from the arena seed, the
round and each bot's name); ``run_arena`` runs them all and writes every file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bots.arena import lobster
from bots.arena.config import ArenaConfig
from bots.arena.output import Progress, write_chart, write_leaderboard, write_round
from bots.arena.scoring import (
    MINUTE_NS,
    RoundRecorder,
    Row,
    minute_samples,
    overall_rows,
    rank_rows,
    round_row,
)
from bots.arena.venue import NS, Venue
from exchange.protocol.config import AccountSpec

STEP_NS = 10 * NS
"""Simulated time between progress updates."""

Log = Callable[[str], None]


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` (stable across runs and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class RoundResult:
    round_no: int
    rows: list[Row]
    """Ranked."""
    recorder: RoundRecorder
    venue: Venue
    curves: dict[str, list[tuple[float, float]]]
    """Per bot: (simulated minute, equity), ~300 points over the round (for the chart)."""
    background: dict[str, int]
    """The LOBSTER replay's counts (empty without one)."""


def run_round(
    config: ArenaConfig,
    round_no: int,
    data: lobster.LobsterFile | None = None,
    progress: Callable[[float], None] | None = None,
    log: Log | None = None,
) -> RoundResult:
    """Play round ``round_no`` (from 1) of ``config``; ``data``: the parsed LOBSTER file when
    the market is ``lobster:…`` (read here when not given)."""
    if data is None and config.lobster_path is not None:
        data = lobster.LobsterFile.read(config.lobster_path)
    names = [bot.name for bot in config.bots]
    accounts = [AccountSpec(name=name, cash=config.cash) for name in names]
    background = None
    start_ns = config.start_ns
    if data is not None:
        accounts += lobster.accounts()
        background = lobster.LobsterReplay(data)
        start_ns = data.start_ns
    recorder = RoundRecorder(names, config.system.exporter.performance_interval_ms)

    def round_log(text: str) -> None:
        if log is not None:
            log(f"round {round_no}: {text}")

    venue = Venue(
        config.system,
        accounts=accounts,
        start_ns=start_ns,
        seed=derive_seed(config.seed, round_no, "venue"),
        latency_ms=config.latency_ms,
        jitter_ms=config.jitter_ms,
        stop_on_error=config.stop_on_error,
        charge_compute=config.charge_compute,
        background=background,
        recorder=recorder,
        on_log=round_log,
    )
    for entry in config.bots:
        strategy = entry.strategy_class(entry.strategy_config)
        seed = derive_seed(config.seed, round_no, entry.name)
        venue.add_bot(entry.name, entry.strategy, strategy, entry.name, entry.symbols, seed)
    venue.start()
    end_ns = start_ns + round(config.seconds * NS)
    at = start_ns
    while at < end_ns:
        at = min(at + STEP_NS, end_ns)
        venue.run_until(at)
        if progress is not None:
            progress((at - start_ns) / (end_ns - start_ns))
    venue.finish()
    rows = []
    curves: dict[str, list[tuple[float, float]]] = {}
    for bot in venue.bots:
        account = venue.core.account_reply(bot.account)
        assert account is not None
        record = recorder.records[bot.account]
        rows.append(
            round_row(
                round_no,
                bot.name,
                bot.strategy,
                crashed=bot.crashed,
                cash=config.cash,
                final_equity=account.equity,
                fees=account.fees,
                record=record,
                errors=bot.errors,
                start_ns=start_ns,
                end_ns=end_ns,
            )
        )
        curves[bot.name] = _curve(record.equity, start_ns, end_ns, config.cash, account.equity)
    counts = dict(background.counts) if background is not None else {}
    return RoundResult(round_no, rank_rows(rows), recorder, venue, curves, counts)


def _curve(
    series: list[tuple[int, float]], start_ns: int, end_ns: int, cash: float, final: float
) -> list[tuple[float, float]]:
    """(minute, equity) about 300 times over the round (at least every simulated second)."""
    full = [(start_ns, cash), *series, (end_ns, final)]
    step = max(NS, (end_ns - start_ns) // 300)
    samples = minute_samples(full, start_ns, end_ns, cash, step)
    minutes = [k * step / MINUTE_NS for k in range(len(samples))]
    minutes[-1] = (end_ns - start_ns) / MINUTE_NS
    return list(zip(minutes, samples, strict=True))


def run_arena(
    config: ArenaConfig,
    out: Path,
    progress: Progress | None = None,
    log: Log | None = None,
    data: lobster.LobsterFile | None = None,
) -> list[Row]:
    """Every round, then the files (PROTOCOL §8); returns the leaderboard rows (per round,
    then ``all``). ``data``: the LOBSTER file already read (else read here if needed)."""
    if data is None and config.lobster_path is not None:
        data = lobster.LobsterFile.read(config.lobster_path)
    rows: list[Row] = []
    curves = []
    for round_no in range(1, config.rounds + 1):
        update = (lambda f, r=round_no: progress.update(r, f)) if progress is not None else None
        result = run_round(config, round_no, data, update, log)
        write_round(out, round_no, result.recorder)
        rows.extend(result.rows)
        curves.append(result.curves)
        if progress is not None:
            best = result.rows[0]
            extra = ""
            if result.background:
                c = result.background
                extra = f", lobster {c['messages']} messages ({c['skipped']} skipped)"
            progress.done(
                round_no,
                f"{len(result.recorder.fills)} trades, best {best.bot} {best.pnl:,.2f}{extra}",
            )
    rows.extend(overall_rows(rows, config.cash, config.rounds))
    write_leaderboard(out, rows)
    write_chart(out / "arena.png", curves, rows)
    return rows
