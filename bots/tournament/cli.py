"""``python -m bots.tournament --rounds N --seconds S [--cash C] [--gateway URL]
[--marketdata URL] [--api-key KEY] [--config FILE] [--out DIR] [--exporter-out DIR]``.

Exit codes: 0 done; 2 bad input or an unusable venue before the first round (one line on
stderr: no gateway or relay, a refused key, a key that is not an operator's); 1 the venue
stopped answering mid-tournament, or the exporter's files never caught up (the completed
rounds are written); 130 interrupted (Ctrl-C / SIGTERM: the completed rounds are written).
The tables go to stdout, progress and problems to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bots.arena.output import Progress, table
from bots.tournament.session import (
    Interrupted,
    OperatorSession,
    RoundFailed,
    RoundsFeed,
    TournamentError,
    play_rounds,
)
from bots.tournament.standings import (
    RoundSpan,
    exported_seq,
    leaderboard_rows,
    read_rounds,
    relay_table,
    write_results,
)
from exchange.protocol.config import ConfigError, SystemConfig, load_config
from exchange.service.runtime import run, stop_event_on_signals

EXPORT_WAIT_S = 30.0
"""How long the end waits for the exporter's files to reach the last round's end."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bots.tournament",
        description="Run rounds on the live venue as an operator and rank the accounts "
        "from the exporter's files (docs/arena.md, Tournament on the live venue).",
    )
    p.add_argument("--rounds", type=int, required=True, help="how many rounds")
    p.add_argument("--seconds", type=float, required=True, help="length of each round")
    p.add_argument("--cash", type=float, default=100_000.0, help="every account's cash (100000)")
    p.add_argument("--gateway", default=None, help="gateway URL (config [bots] gateway)")
    p.add_argument("--marketdata", default=None, help="relay URL (config [bots] marketdata)")
    p.add_argument(
        "--api-key",
        default=None,
        help="operator key (else env EXCHANGE_ADMIN_KEY, else the config's first [admin] key)",
    )
    p.add_argument("--config", default=None, help="system TOML (env EXCHANGE_CONFIG; shipped)")
    p.add_argument(
        "--accounts",
        default=None,
        metavar="A,B,...",
        help="rank only these accounts (default: every account but the system ones)",
    )
    p.add_argument("--out", default="tournament-out", help="output folder (./tournament-out)")
    p.add_argument(
        "--exporter-out",
        default=None,
        help="the exporter's --out (env EXCHANGE_EXPORTER_OUT, else config [exporter] out)",
    )
    return p


def settings(args: argparse.Namespace) -> tuple[SystemConfig, str, Path]:
    """The config, the operator key and the exporter's folder. Raises TournamentError."""
    if args.rounds < 1:
        raise TournamentError("--rounds must be at least 1")
    if not args.seconds > 0:
        raise TournamentError("--seconds must be positive")
    if not 0 < args.cash <= 1e15:
        raise TournamentError("--cash must be positive (at most 1e15)")
    try:
        config = load_config(args.config or os.environ.get("EXCHANGE_CONFIG"))
    except ConfigError as exc:
        raise TournamentError(str(exc)) from None
    key = args.api_key or os.environ.get("EXCHANGE_ADMIN_KEY")
    if not key:
        if not config.admin.api_keys:
            raise TournamentError(
                "no operator key: pass --api-key, set EXCHANGE_ADMIN_KEY, or list one in the "
                "config's [admin] api_keys"
            )
        key = config.admin.api_keys[0]
    exporter_out = args.exporter_out or os.environ.get("EXCHANGE_EXPORTER_OUT")
    return config, key, Path(exporter_out or config.exporter.out)


def system_accounts(config: SystemConfig) -> list[str]:
    """Accounts never ranked: the insurance fund and ``system = true`` accounts."""
    return [config.insurance_account, *(a.name for a in config.accounts if a.system)]


def chosen_accounts(args: argparse.Namespace) -> set[str] | None:
    """``--accounts`` as a set (None: every account)."""
    if args.accounts is None:
        return None
    return {name.strip() for name in args.accounts.split(",") if name.strip()}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config, key, exporter_out = settings(args)
    except TournamentError as exc:
        print(f"tournament: {exc}", file=sys.stderr)
        return 2
    gateway = args.gateway or config.bots.gateway
    marketdata = args.marketdata or config.bots.marketdata
    run(lambda: _main(args, config, key, gateway, marketdata, exporter_out))
    return 0  # pragma: no cover - run() exits with _main's code


async def _main(
    args: argparse.Namespace,
    config: SystemConfig,
    key: str,
    gateway: str,
    marketdata: str,
    exporter_out: Path,
) -> int:
    stop = stop_event_on_signals()
    session = OperatorSession(gateway, key, stop)
    feed = RoundsFeed(marketdata, stop)
    try:
        await session.open()
        await feed.open()
    except TournamentError as exc:
        print(f"tournament: {exc}", file=sys.stderr)
        await session.close()
        return 2
    progress = Progress(args.rounds)
    done: list[RoundSpan] = []

    def on_round(span: RoundSpan) -> None:
        done.append(span)
        leader = span.final.rows[0] if span.final.rows else None
        best = f", best {leader.account} {leader.pnl:,.2f}" if leader else ""
        progress.done(span.index, f"venue round {span.venue_round}{best}")
        print(
            f"round {span.index}/{args.rounds} {span.name!r} (venue round {span.venue_round}, "
            f"seq {span.start_seq}..{span.end_seq}): standings from the relay"
        )
        print(relay_table(span.final, chosen_accounts(args)), flush=True)

    status = 0
    try:
        await play_rounds(
            session,
            feed,
            rounds=args.rounds,
            seconds=args.seconds,
            cash=args.cash,
            on_round=on_round,
            on_progress=progress.update,
        )
    except Interrupted:
        rounds = f"{len(done)} complete round{'s' if len(done) != 1 else ''}"
        print(f"tournament: interrupted after {rounds}", file=sys.stderr)
        status = 130
    except RoundFailed as exc:
        print(f"tournament: {exc}", file=sys.stderr)
        status = 1
    finally:
        await feed.close()
        await session.close()
    if done:
        complete = await _wait_exported(exporter_out, done, stop)
        if len(complete) < len(done):
            seq = exported_seq(exporter_out)
            print(
                f"tournament: the exporter's files in {exporter_out} reached seq {seq}, not "
                f"{done[len(complete)].end_seq} (end of round {len(complete) + 1}); is "
                f"`python -m exporter --out {exporter_out}` running?",
                file=sys.stderr,
            )
            status = status or 1
        if complete:
            _write(args, complete, exporter_out, config)
    return status


async def _wait_exported(
    exporter_out: Path, spans: list[RoundSpan], stop: asyncio.Event
) -> list[RoundSpan]:
    """The spans the exporter's files hold entirely, once they hold all of them or after
    EXPORT_WAIT_S (a further Ctrl-C ends the wait at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXPORT_WAIT_S
    interrupted = stop.is_set()
    while True:
        seq = exported_seq(exporter_out) or 0
        if seq >= spans[-1].end_seq or loop.time() > deadline:
            return [span for span in spans if span.end_seq <= seq]
        if interrupted:
            stop.clear()
            interrupted = False
        await asyncio.sleep(0.1)  # polling the exporter's state file, bounded
        if stop.is_set():
            return [span for span in spans if span.end_seq <= (exported_seq(exporter_out) or 0)]


def _write(
    args: argparse.Namespace, spans: list[RoundSpan], exporter_out: Path, config: SystemConfig
) -> None:
    out = Path(args.out)
    files = read_rounds(exporter_out, spans)
    rows = leaderboard_rows(spans, files, system_accounts(config), chosen_accounts(args))
    write_results(out, spans, files, rows)
    overall = [row for row in rows if row.round == "all"]
    rounds = f"{len(spans)} round{'s' if len(spans) != 1 else ''}"
    venue = f"venue rounds {spans[0].venue_round}-{spans[-1].venue_round}"
    print(f"{len(overall)} accounts, {rounds} of {args.seconds:g} s (live, {venue})")
    print(table(overall))
    print(f"files in {out}/: leaderboard.csv, leaderboard.json, rounds.json, round-N/")
