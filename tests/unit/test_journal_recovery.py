"""Journal framing, damage detection, snapshots and recovery, on real files."""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
import pytest

from exchange.core import Exchange
from exchange.engine.journal import HEADER, JournalReader, JournalWriter, list_segments
from exchange.engine.recovery import RecoveryError, events_since, make_snapshot, recover
from exchange.engine.snapshots import list_snapshots, write_snapshot
from exchange.protocol import encode
from exchange.protocol.config import DEFAULT_CONFIG_PATH
from exchange.protocol.messages import AdvanceTime, CancelOrder, CreateAccount, NewOrder
from exchange.replay import main as replay_main
from tests.unit.core_helpers import make_exchange


def commands(count: int) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [("", CreateAccount(account="late", cash=5e6, api_key="k"))]
    for i in range(count):
        side = "buy" if i % 2 else "sell"
        price = 100.0 + ((i * 7) % 9 - 4) * 0.25
        out.append(("abc"[i % 3], NewOrder(symbol="XYZ", side=side, qty=1 + i % 5, price=price)))
        if i % 7 == 3:
            out.append(("late", NewOrder(symbol="XYZ", side="buy", qty=2, price=99.0)))
        if i % 11 == 5:
            out.append(("abc"[i % 3], CancelOrder(order_id=i // 2 + 1)))
    return out


class JournaledCore:
    """What the engine does: submit to the core, journal the command, sync."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config = make_exchange().config
        state = recover(directory, self.config)
        self.core = state.core
        self.writer = JournalWriter(directory, state.next_index)
        self.events: list[object] = []

    def apply(self, account: str, command: object, ts: int) -> None:
        seq_before = self.core.last_seq
        self.events.extend(self.core.submit(account, command, ts))
        self.writer.append(seq_before, ts, account, command)
        self.writer.sync()

    def snapshot(self) -> None:
        write_snapshot(self.directory, make_snapshot(self.core, self.writer.next_index))
        self.writer.rotate()


def run_uninterrupted(cmds: list[tuple[str, object]]) -> Exchange:
    core = make_exchange()
    for ts, (account, command) in enumerate(cmds, start=1):
        core.submit(account, command, ts)
    return core


def test_recovery_reproduces_the_uninterrupted_state(tmp_path: Path) -> None:
    cmds = commands(200)
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
    journaled.writer.close()
    state = recover(tmp_path, journaled.config)
    assert state.problems == [] and state.replayed == len(cmds)
    expected = run_uninterrupted(cmds)
    assert state.core.state_hash() == expected.state_hash()
    assert state.core.last_seq == expected.last_seq
    assert state.next_index == len(cmds)


def test_seq_continues_without_gap_after_restart(tmp_path: Path) -> None:
    cmds = commands(60)
    first = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds[:40], start=1):
        first.apply(account, command, ts)
    first.writer.close()
    second = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds[40:], start=41):
        second.apply(account, command, ts)
    seqs = [e.seq for e in first.events + second.events if getattr(e, "seq", None)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert encode(first.events + second.events) == encode(_all_events(cmds))


def _all_events(cmds: list[tuple[str, object]]) -> list[object]:
    core = make_exchange()
    out: list[object] = []
    for ts, (account, command) in enumerate(cmds, start=1):
        out.extend(core.submit(account, command, ts))
    return out


def test_snapshot_plus_tail(tmp_path: Path) -> None:
    cmds = commands(150)
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts in (50, 120):
            journaled.snapshot()
    journaled.writer.close()
    assert len(list_snapshots(tmp_path)) == 2 and len(list_segments(tmp_path)) == 3
    state = recover(tmp_path, journaled.config)
    assert state.snapshot_index == 120
    assert state.replayed == len(cmds) - 120
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()
    assert replay_main(["--data-dir", str(tmp_path), "--config", str(_toml(tmp_path))]) == 0


def _toml(tmp_path: Path) -> Path:
    """A system TOML equal to the test core configuration (for the replay CLI)."""
    path = tmp_path.parent / f"{tmp_path.name}-system.toml"
    path.write_text(
        """
[[instruments]]
symbol = "XYZ"
tick_size = 0.01
reference_price = 100.0
price_band = 0.5
max_order_qty = 10000
max_position = 100000

[[accounts]]
name = "a"
cash = 10000000.0
max_open_orders = 50
[[accounts]]
name = "b"
cash = 10000000.0
max_open_orders = 50
[[accounts]]
name = "c"
cash = 10000000.0
max_open_orders = 50
"""
    )
    return path


def test_replay_tool_verifies_a_healthy_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    cmds = commands(80)
    journaled = JournaledCore(data)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == 40:
            journaled.snapshot()
    journaled.writer.close()
    assert replay_main(["--data-dir", str(data), "--config", str(_toml(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert f"journal: {len(cmds)} records" in out and out.strip().endswith("OK")


def _write_journal(directory: Path, count: int) -> list[tuple[str, object]]:
    cmds = commands(count)
    journaled = JournaledCore(directory)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
    journaled.writer.close()
    return cmds


def test_torn_last_record_is_truncated_and_reported(tmp_path: Path) -> None:
    cmds = _write_journal(tmp_path, 50)
    ((_, segment),) = list_segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])
    state = recover(tmp_path, make_exchange().config)
    assert len(state.problems) == 1 and "torn record" in state.problems[0]
    assert state.core.state_hash() == run_uninterrupted(cmds[:-1]).state_hash()
    # The repaired journal is clean and appendable.
    assert recover(tmp_path, make_exchange().config).problems == []


def test_flipped_byte_is_detected_by_the_checksum(tmp_path: Path) -> None:
    cmds = _write_journal(tmp_path, 50)
    ((_, segment),) = list_segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x40
    segment.write_bytes(bytes(data))
    state = recover(tmp_path, make_exchange().config)
    assert "checksum mismatch" in state.problems[0]
    assert state.core.state_hash() == run_uninterrupted(cmds[:-1]).state_hash()
    records = list(JournalReader(tmp_path).records())
    assert len(records) == len(cmds) - 1


def test_a_well_framed_record_that_does_not_decode_ends_the_valid_journal(
    tmp_path: Path,
) -> None:
    # A record whose checksum matches but whose payload is not a journal record (a bug, or
    # a file from elsewhere) is damage like any other: the journal ends before it.
    cmds = _write_journal(tmp_path, 40)
    ((_, segment),) = list_segments(tmp_path)
    payload = b"\xc1"  # never valid msgpack
    with segment.open("ab") as handle:
        handle.write(HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
    assert len(list(JournalReader(tmp_path).records())) == len(cmds)
    state = recover(tmp_path, make_exchange().config)
    assert len(state.problems) == 1 and "undecodable record" in state.problems[0]
    assert state.next_index == len(cmds)
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()
    assert recover(tmp_path, make_exchange().config).problems == []


def test_damaged_snapshot_falls_back_to_the_journal(tmp_path: Path) -> None:
    cmds = commands(60)
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == 30:
            journaled.snapshot()
    journaled.writer.close()
    (info,) = list_snapshots(tmp_path)
    info.path.write_bytes(info.path.read_bytes()[:100])
    state = recover(tmp_path, journaled.config)
    assert any("damaged" in p for p in state.problems)
    assert state.snapshot_index is None
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()


def test_a_different_core_configuration_is_refused(tmp_path: Path) -> None:
    _write_journal(tmp_path, 5)
    other = make_exchange(max_position=7).config
    with pytest.raises(RecoveryError, match="different core configuration"):
        recover(tmp_path, other)


def test_events_since_regenerates_the_exact_events(tmp_path: Path) -> None:
    cmds = commands(90)
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == 45:
            journaled.snapshot()
    journaled.writer.close()
    live = [e for e in journaled.events if getattr(e, "seq", None)]
    for since in (0, 10, live[len(live) // 2].seq, live[-1].seq):
        regenerated = [
            e for batch in events_since(tmp_path, journaled.config, since) for e in batch
        ]
        assert encode(regenerated) == encode([e for e in live if e.seq > since])


def test_a_snapshot_ahead_of_a_damaged_journal_is_set_aside_for_good(tmp_path: Path) -> None:
    # A clean stop snapshots after the last record; then that record is damaged.
    cmds = commands(40)
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
    journaled.snapshot()
    journaled.writer.close()
    segment = list_segments(tmp_path)[0][1]
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x40
    segment.write_bytes(bytes(data))
    # Recovery drops the damaged record, and the snapshot that contains it is set aside...
    resumed = JournaledCore(tmp_path)
    assert resumed.core.state_hash() == run_uninterrupted(cmds[:-1]).state_hash()
    assert list_snapshots(tmp_path) == []
    # ...so that once the journal has grown past its index with other commands, the next
    # start does not restore it (which would not match the records after it).
    other = [("abc"[i % 3], CancelOrder(order_id=i + 1)) for i in range(5)]
    for ts, (account, command) in enumerate(other, start=len(cmds)):
        resumed.apply(account, command, ts)
    state = recover(tmp_path, resumed.config)  # as after a crash here
    assert state.problems == []
    assert state.core.state_hash() == resumed.core.state_hash()
    resumed.snapshot()
    resumed.writer.close()
    assert replay_main(["--data-dir", str(tmp_path), "--config", str(_toml(tmp_path))]) == 0


def _journal_with_snapshot(directory: Path, count: int, at: int) -> list[tuple[str, object]]:
    cmds = commands(count)
    journaled = JournaledCore(directory)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == at:
            journaled.snapshot()
    journaled.writer.close()
    return cmds


def test_an_intact_but_unrestorable_snapshot_is_set_aside_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checksum fine, content not a state this core can load (e.g. another core version).
    data = tmp_path / "data"
    cmds = _journal_with_snapshot(data, 60, 30)
    (info,) = list_snapshots(data)
    good = make_snapshot(make_exchange(), 30)
    write_snapshot(data, msgspec.structs.replace(good, core=b"\x93\x01\x02\x03"))
    assert replay_main(["--data-dir", str(data)]) == 1
    assert "UNRESTORABLE snapshot at record 30" in capsys.readouterr().out
    state = recover(data, make_exchange().config)
    assert any("not restorable" in p and info.path.name in p for p in state.problems)
    assert state.snapshot_index is None and list_snapshots(data) == []
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()
    regenerated = [e for batch in events_since(data, state.core.config, 10) for e in batch]
    assert [e.seq for e in regenerated] == list(range(11, state.core.last_seq + 1))


def test_replay_uses_the_data_directorys_own_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _journal_with_snapshot(data, 40, 20)
    assert replay_main(["--data-dir", str(data)]) == 0  # no --config: the remembered one
    assert capsys.readouterr().out.strip().endswith("OK")
    # The shipped config is not the one this journal was written under: refused, not replayed.
    assert replay_main(["--data-dir", str(data), "--config", str(DEFAULT_CONFIG_PATH)]) == 2
    assert "different core configuration" in capsys.readouterr().err


def test_replay_reports_a_damaged_tail_and_keeps_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmds = _write_journal(tmp_path, 30)
    ((_, segment),) = list_segments(tmp_path)
    damaged = segment.read_bytes()[:-4]
    segment.write_bytes(damaged)
    assert replay_main(["--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED {segment.name}: torn record" in out
    assert f"journal: {len(cmds) - 1} records" in out
    assert segment.read_bytes() == damaged  # the tool only reads


def test_replay_detects_a_seq_gap_between_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_journal(tmp_path, 20)
    last_seq = recover(tmp_path, make_exchange().config).core.last_seq
    writer = JournalWriter(tmp_path, JournalReader(tmp_path).scan()[1])
    writer.append(last_seq + 3, 10_000, "a", CancelOrder(order_id=1))  # not where the state is
    writer.close()
    assert replay_main(["--data-dir", str(tmp_path)]) == 1
    assert "GAP at record" in capsys.readouterr().out
    with pytest.raises(RecoveryError, match="starts after seq"):
        recover(tmp_path, make_exchange().config)


def _gtd_commands() -> list[tuple[str, object]]:
    """GTD orders (each due 20 commands later) among plain ones, with ``AdvanceTime`` ticks."""
    out: list[tuple[str, object]] = []
    for i in range(60):  # command i gets ts i + 1
        if i % 5 == 0:
            gtd = NewOrder(
                symbol="XYZ", side="buy", qty=2, price=98.0 + i % 3, tif="gtd", expire_at=20 + i
            )
            out.append(("abc"[i % 3], gtd))
        elif i % 4 == 0:
            out.append(("", AdvanceTime()))
        else:
            price = 100.0 + (i % 5) * 0.25
            out.append(("abc"[i % 3], NewOrder(symbol="XYZ", side="sell", qty=1, price=price)))
    return out


def test_replaying_the_journal_expires_gtd_orders_at_the_same_seq(tmp_path: Path) -> None:
    cmds = _gtd_commands()
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == 30:
            journaled.snapshot()  # a GTD order still rests here: its deadline is restored
    journaled.writer.close()
    expired = [
        (e.seq, e.order_id)
        for e in journaled.events
        if getattr(e, "reject_reason", None) == "gtd_expired"
    ]
    assert len(expired) >= 3
    state = recover(tmp_path, journaled.config)
    assert state.snapshot_index == 30 and state.problems == []
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()
    regenerated = [e for batch in events_since(tmp_path, journaled.config, 0) for e in batch]
    assert encode(regenerated) == encode([e for e in journaled.events if getattr(e, "seq", None)])
    assert [
        (e.seq, e.order_id)
        for e in regenerated
        if getattr(e, "reject_reason", None) == "gtd_expired"
    ] == expired
    assert replay_main(["--data-dir", str(tmp_path), "--config", str(_toml(tmp_path))]) == 0
