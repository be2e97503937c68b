#!/usr/bin/env python
"""Benchmark crash recovery and the cost of journaling.

1. Journals N commands of the seeded `mixed` flow (scripts/bench_engine.py) into a fresh data
   directory, then times `recover()` (what the engine does at start-up) from the journal
   alone, and again with a snapshot taken 90% of the way through.
2. Times the core applying the same commands while journaling them, as the engine does: the
   engine's sequencer and committer on an event loop, one group every `--per-iteration`
   commands (one event-loop iteration's worth), under each fsync policy (none: write only;
   batch: write, fsync in the background every 5 ms; always: release after an fsync
   covering the group, pipelined), against the core alone.

Usage: .venv/bin/python scripts/bench_recovery.py [--commands 1000000] [--per-iteration 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import SYMBOLS, FlowGenerator, make_config

from exchange.core import COMPILED, Exchange
from exchange.engine.group_commit import (
    Committer,
    ImmediateCommit,
    PeriodicSync,
    PipelinedCommit,
)
from exchange.engine.journal import JournalWriter
from exchange.engine.recovery import make_snapshot, recover
from exchange.engine.sequencer import Sequencer
from exchange.engine.snapshots import write_snapshot

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
    """Commands/s of core + journal under ``mode`` ('core' = no journal), through the
    engine's own sequencer and committer on an event loop: each loop iteration submits
    ``per_iteration`` commands and hands one group to the committer, whose fsyncs (batch,
    always) run on its worker thread while the loop goes on. Timed until every group is
    released."""
    return asyncio.run(_journaled(commands, mode, per_iteration, directory))


async def _journaled(
    commands: list[Command], mode: str, per_iteration: int, directory: Path
) -> float:
    core = Exchange(make_config(SYMBOLS[:1]))
    writer = JournalWriter(directory, 0) if mode != "core" else None
    ticks = iter(range(1_700_000_000_000_000_000, 1 << 62, 1000))
    sequencer = Sequencer(core, journal=writer, sync=mode != "none", clock=lambda: next(ticks))
    committer: Committer = ImmediateCommit(sequencer)
    if mode == "batch":
        committer = PeriodicSync(sequencer, _fail, interval=0.005)
    elif mode == "always":
        committer = PipelinedCommit(sequencer, _fail)
    released = 0

    def release() -> None:
        nonlocal released
        released += 1

    groups = 0
    started = time.perf_counter()
    for first in range(0, len(commands), per_iteration):
        for account, command in commands[first : first + per_iteration]:
            sequencer.submit(account, command)
        committer.commit(release)
        groups += 1
        await asyncio.sleep(0)  # the rest of the loop iteration: fsync completions
    committer.close()
    elapsed = time.perf_counter() - started
    assert released == groups
    if writer is not None:
        writer.close()
    return len(commands) / elapsed


def _fail(error: BaseException) -> None:
    raise SystemExit(f"journal fsync failed: {error!r}")


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
        for mode in ("core", "none", "batch", "always"):
            results[mode] = journaled_throughput(
                sample, mode, args.per_iteration, Path(tmp) / f"tp-{mode}"
            )
        for mode, rate in results.items():
            print(
                f"throughput {mode:<7} {rate:>10,.0f} commands/s "
                f"({rate / results['core']:.0%} of the core alone)"
            )
        print(f"fsync batch / none: {results['batch'] / results['none']:.0%}")


if __name__ == "__main__":
    main()
