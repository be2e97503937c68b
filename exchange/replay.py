"""Verify a journal: ``python -m exchange.replay --data-dir DIR [--config FILE]``.

Replays the whole journal from scratch, checking that record indexes and seqs follow on without
a gap (each record starts at the seq the state has reached) and that at every snapshot's
position the state hash equals the snapshot's; then recovers from each snapshot plus the
journal tail and checks that the final state hash equals the from-scratch one. Prints counts
and timings; exits 1 on any mismatch, gap or damage, 0 when everything agrees, 2 on a usage
error. The core configuration is the one DIR remembers (``core-config.msgpack``) unless
``--config`` names a system TOML, which must then match it. Reads only; never modifies DIR.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

from exchange.core import CoreConfig, Exchange
from exchange.core.config import core_config
from exchange.engine.journal import JournalReader
from exchange.engine.recovery import CONFIG_FILE, restore_snapshot
from exchange.engine.snapshots import list_snapshots, read_snapshot
from exchange.protocol.config import ConfigError, load_config


def verify(directory: Path, config: CoreConfig) -> int:
    """Run every check, print a report, return the number of problems found."""
    problems = 0
    reader = JournalReader(directory)
    scans, journal_end = reader.scan()
    for scan in scans:
        if scan.problem:
            problems += 1
            print(f"DAMAGED {scan.path.name}: {scan.problem}")
    snapshots = {}
    for info in list_snapshots(directory):
        snapshot = read_snapshot(info.path)
        if snapshot is None:
            problems += 1
            print(f"DAMAGED {info.path.name}")
        else:
            snapshots[snapshot.journal_index] = snapshot
    core = Exchange(config)
    started = time.perf_counter()
    count = 0
    for record in reader.records(0):
        if record.index != count or record.seq_before != core.last_seq:
            problems += 1
            print(
                f"GAP at record {record.index} (expected {count}): it starts after seq "
                f"{record.seq_before}, the state is at seq {core.last_seq}"
            )
            break
        if record.index in snapshots:
            expected = snapshots[record.index].state_hash
            if core.state_hash() != expected:
                problems += 1
                print(f"MISMATCH at snapshot {record.index}: scratch {core.state_hash()}")
        core.submit(record.account, record.command, record.ts)
        count += 1
    scratch_seconds = time.perf_counter() - started
    final_hash = core.state_hash()
    rate = count / scratch_seconds if scratch_seconds else 0.0
    print(
        f"journal: {count} records ({journal_end} indexed), seq {core.last_seq}, "
        f"replayed from scratch in {scratch_seconds:.2f}s ({rate:,.0f} records/s)"
    )
    print(f"state hash {final_hash}")
    for index, snapshot in sorted(snapshots.items()):
        started = time.perf_counter()
        restored = restore_snapshot(config, snapshot)
        if restored is None:
            problems += 1
            print(f"UNRESTORABLE snapshot at record {index}: not a state this core can load")
            continue
        tail = 0
        for record in reader.records(index):
            restored.submit(record.account, record.command, record.ts)
            tail += 1
        seconds = time.perf_counter() - started
        same = restored.state_hash() == final_hash
        problems += not same
        print(
            f"snapshot at record {index} (seq {snapshot.seq}) + {tail} records: "
            f"{'OK' if same else 'MISMATCH'} in {seconds:.2f}s"
        )
    print("OK" if not problems else f"{problems} problem(s)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchange.replay", description=__doc__)
    parser.add_argument("--data-dir", default="./data", help="engine data directory")
    parser.add_argument(
        "--config",
        default=None,
        help="system TOML the journal was written with (default: the data directory's own "
        "core configuration, else the shipped config)",
    )
    args = parser.parse_args(argv)
    directory = Path(args.data_dir)
    if not directory.is_dir():
        print(f"no such data directory: {directory}", file=sys.stderr)
        return 2
    stored_path = directory / CONFIG_FILE
    stored = stored_path.read_bytes() if stored_path.exists() else None
    try:
        if args.config is None and stored is not None:
            config = msgspec.msgpack.decode(stored, type=CoreConfig)
        else:
            config = core_config(load_config(args.config))
    except (ConfigError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if stored is not None and msgspec.msgpack.encode(config) != stored:
        print(
            f"{directory} holds a journal written under a different core configuration than "
            f"{args.config}; pass the --config it was written with",
            file=sys.stderr,
        )
        return 2
    return 1 if verify(directory, config) else 0


if __name__ == "__main__":
    sys.exit(main())
