"""``python -m bots.arena ARENA.toml [--out DIR] [--seed N] [--rounds N] [--seconds S]``.

Exit codes: 0 done; 2 bad input (one line on stderr naming the file and line or the bot;
nothing written). Progress goes to stderr, the final table to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bots.arena.config import ArenaInputError, load_arena
from bots.arena.lobster import LobsterError, LobsterFile
from bots.arena.output import Progress, table
from bots.arena.rounds import run_arena


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bots.arena",
        description="Race bots against the matching core on simulated time (docs/arena.md).",
    )
    p.add_argument("arena", help="the ARENA.toml file")
    p.add_argument("--out", default="arena-out", help="output folder (default ./arena-out)")
    p.add_argument("--seed", type=int, default=None, help="override [arena] seed")
    p.add_argument("--rounds", type=int, default=None, help="override [arena] rounds")
    p.add_argument("--seconds", type=float, default=None, help="override [arena] seconds")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_arena(args.arena).with_overrides(
            seed=args.seed, rounds=args.rounds, seconds=args.seconds
        )
    except ArenaInputError as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 2
    data = None
    if config.lobster_path is not None:
        try:  # read (and check) the whole file before anything is written
            data = LobsterFile.read(config.lobster_path)
        except (LobsterError, OSError) as exc:
            print(f"arena: {config.path}: market: {exc}", file=sys.stderr)
            return 2
    out = Path(args.out)

    def log(text: str) -> None:
        print(f"arena: {text}", file=sys.stderr)

    rows = run_arena(config, out, Progress(config.rounds), log, data)
    overall = [row for row in rows if row.round == "all"]
    rounds = f"{config.rounds} round{'s' if config.rounds != 1 else ''}"
    print(f"{len(config.bots)} bots, {rounds} of {config.seconds:g} s (simulated)")
    print(table(overall))
    print(f"files in {out}/: leaderboard.csv, leaderboard.json, arena.png, round-N/")
    return 0
