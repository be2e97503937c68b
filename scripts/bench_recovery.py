#!/usr/bin/env python
"""Benchmark crash recovery and the cost of journaling.

1. Journals N commands of the seeded `mixed` flow (scripts/bench_engine.py) into a fresh data
   directory, then times `recover()` (what the engine does at start-up) from the journal
   alone, and again with a snapshot taken 90% of the way through.
2. Times the core applying the same commands while journaling them, as the engine does: a
   group commit every `--per-iteration` commands (one event-loop iteration's worth), under
   each fsync policy (none: write only; batch: write + fsync per iteration; always: fsync per
   command, on a subset), against the core alone.

Usage: .venv/bin/python scripts/bench_recovery.py [--commands 1000000] [--per-iteration 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import SYMBOLS, FlowGenerator, make_config

from exchange.core import COMPILED, Exchange
from exchange.journal import JournalWriter
from exchange.recovery import make_snapshot, recover
from exchange.snapshots import write_snapshot

Command = tuple[str, Any]


def journal(directory: Path, commands: list[Command], snapshot_at: int | None) -> Exchange:
    config = make_config(SYMBOLS[:1])
    core = Exchange(config)
    writer = JournalWriter(directory, 0)
    ts = 1_700_000_000_000_000_000
    for index, (account, command) in enumerate(commands):
        if index == snapshot_at:
            writer.sync()
            write_snapshot(directory, make_snapshot(core, writer.next_index))
            writer.rotate()
        ts += 1000
        writer.append(core.last_seq, ts, account, command)
        core.submit(account, command, ts)
        if index % 4096 == 0:
            writer.write()
    writer.close()
    return core


def timed_recovery(directory: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    state = recover(directory, make_config(SYMBOLS[:1]))
    return time.perf_counter() - started, state.replayed, state.core.state_hash()


def journaled_throughput(
    commands: list[Command], mode: str, per_iteration: int, directory: Path
) -> float:
    """Commands/s of core + journal under ``mode`` ('core' = no journal)."""
    core = Exchange(make_config(SYMBOLS[:1]))
    writer = JournalWriter(directory, 0) if mode != "core" else None
    ts = 1_700_000_000_000_000_000
    started = time.perf_counter()
    for index, (account, command) in enumerate(commands):
        ts += 1000
        if writer is not None:
            writer.append(core.last_seq, ts, account, command)
            if mode == "always":
                writer.sync()
        core.submit(account, command, ts)
        if writer is not None and index % per_iteration == per_iteration - 1:
            if mode == "none":
                writer.write()
            elif mode == "batch":
                writer.sync()
    if writer is not None:
        writer.close()
    return len(commands) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--per-iteration", type=int, default=64)
    parser.add_argument("--throughput-commands", type=int, default=200_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, compiled core: {COMPILED}")
    generator = FlowGenerator(SYMBOLS[:1], 42, 30)
    generator.mixed(args.commands)
    commands = generator.commands
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        plain, snap = Path(tmp) / "plain", Path(tmp) / "snap"
        started = time.perf_counter()
        reference = journal(plain, commands, None)
        print(f"journaled {len(commands):,} commands in {time.perf_counter() - started:.1f}s")
        journal(snap, commands, int(len(commands) * 0.9))
        seconds, replayed, digest = timed_recovery(plain)
        assert digest == reference.state_hash(), "recovery does not reproduce the state"
        print(
            f"recovery, journal only:        {seconds:6.2f}s ({replayed:,} records, "
            f"{replayed / seconds:,.0f} records/s)"
        )
        seconds, replayed, digest = timed_recovery(snap)
        assert digest == reference.state_hash(), "snapshot recovery does not reproduce the state"
        print(f"recovery, snapshot at 90%:     {seconds:6.2f}s ({replayed:,} records replayed)")
        sample = commands[: args.throughput_commands]
        results = {}
        for mode in ("core", "none", "batch"):
            results[mode] = journaled_throughput(
                sample, mode, args.per_iteration, Path(tmp) / f"tp-{mode}"
            )
        results["always"] = journaled_throughput(
            sample[:5_000], "always", args.per_iteration, Path(tmp) / "tp-always"
        )
        for mode, rate in results.items():
            print(
                f"throughput {mode:<7} {rate:>10,.0f} commands/s "
                f"({rate / results['core']:.0%} of the core alone)"
            )
        print(f"fsync batch / none: {results['batch'] / results['none']:.0%}")


if __name__ == "__main__":
    main()
