#!/usr/bin/env python
"""Benchmark the arena (``python -m bots.arena``, PROTOCOL §8).

1. The Procfile's bots (every ``python -m bots`` line: strategy, symbol, params; each on an
   account of its name with 1,000,000 cash, what the config gives the Procfile's makers: with
   less they spin on ``insufficient_margin`` rejects at their rate limit) on
   ``exchange/default.toml`` for one simulated round of ``--seconds``
   (default an hour): ``python -m bots.arena`` runs as a subprocess and the whole run's wall
   time is measured, start-up and file writing included. Prints simulated/wall.
2. A LOBSTER message file (default: the AMZN sample day in ``../shared/data/lobster``)
   replayed with no bots through the arena's venue (core, relay feed, engine timers), in
   process: messages per second of the replay loop, and with the file's parsing included.

Usage: .venv/bin/python scripts/bench_arena.py [--seconds 3600] [--lobster PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bots.arena import lobster  # noqa: E402
from bots.arena.venue import Venue  # noqa: E402
from bots.cli import parser as bot_parser  # noqa: E402
from bots.params import parse_assignments, to_literal  # noqa: E402
from exchange.core import BUILD  # noqa: E402
from exchange.protocol.config import InstrumentSpec, SystemConfig  # noqa: E402

AMZN = (
    ROOT.parent / "shared" / "data" / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
)


def procfile_arena(seconds: float) -> str:
    """An ARENA.toml with the Procfile's bots."""
    lines = [
        "[arena]",
        f'config = "{(ROOT / "exchange" / "default.toml").as_posix()}"',
        "rounds = 1",
        f"seconds = {seconds}",
        "seed = 1",
        "cash = 1000000",  # as the config's accounts of the Procfile's makers and takers
        "",
    ]
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.lstrip().startswith("#") or ":" not in line:
            continue
        argv = shlex.split(line.partition(":")[2])
        if argv[:1] == ["exec"]:
            argv = argv[1:]
        if argv[1:3] != ["-m", "bots"]:
            continue
        args = bot_parser().parse_args(argv[3:])
        params = parse_assignments(args.param or [])
        table = ", ".join(f"{k} = {to_literal(v)}" for k, v in params.items())
        lines += [
            "[[bots]]",
            f'name = "{args.account}"',
            f'strategy = "{args.strategy}"',
            f'symbol = "{args.symbol}"',
            f"params = {{ {table} }}",
            "",
        ]
    return "\n".join(lines)


def bench_bots(seconds: float, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        arena = Path(tmp) / "procfile.toml"
        text = procfile_arena(seconds)
        arena.write_text(text)
        out = keep if keep is not None else Path(tmp) / "out"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bots.arena", str(arena), "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(done.returncode)
        trades = sum(1 for _ in (out / "round-1" / "trades.csv").open()) - 1
    bots = text.count("[[bots]]")
    print(
        f"procfile bots: {bots} bots, {seconds:g} simulated s in {wall:.2f} s wall "
        f"(whole run, start-up included): {seconds / wall:.0f}x real time, {trades} trades"
    )


def bench_lobster(path: Path) -> None:
    started = time.perf_counter()
    data = lobster.LobsterFile.read(path)
    parsed = time.perf_counter()
    spec = InstrumentSpec(
        symbol=data.symbol,
        tick_size=0.01,
        reference_price=data.prices[0] / lobster.PRICE_SCALE,
        max_order_qty=1_000_000,
        max_position=1_000_000_000,
        price_band=0.0,
    )
    replay = lobster.LobsterReplay(data)
    venue = Venue(
        SystemConfig(instruments=[spec]),
        accounts=lobster.accounts(),
        start_ns=data.start_ns,
        seed=1,
        background=replay,
    )
    begun = time.perf_counter()
    venue.run_until(data.times[-1])
    finished = time.perf_counter()
    messages = replay.counts["messages"]
    simulated = (data.times[-1] - data.start_ns) / 1e9
    print(
        f"lobster {path.name}: {messages:,} messages ({venue.commands:,} commands, "
        f"{simulated / 3600:.1f} simulated hours) replayed in {finished - begun:.2f} s: "
        f"{messages / (finished - begun):,.0f} messages/s; "
        f"{messages / (finished - started):,.0f}/s with parsing ({parsed - started:.2f} s)"
    )
    print(f"  {replay.counts}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3600.0, help="simulated seconds (3600)")
    p.add_argument("--lobster", type=Path, default=AMZN, help="LOBSTER message file")
    p.add_argument("--keep", type=Path, default=None, help="keep the arena's files here")
    args = p.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, core build: {BUILD}")
    bench_bots(args.seconds, args.keep)
    if args.lobster.exists():
        bench_lobster(args.lobster)
    else:
        print(f"lobster: {args.lobster} not found (skipped)")


if __name__ == "__main__":
    main()
