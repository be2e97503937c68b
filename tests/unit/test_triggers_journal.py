"""Journal replay and recovery with conditional, scheduled and reduce-only orders: a recovered
engine (snapshot + journal tail) has the uninterrupted state, and regenerating the events fires
and activates every order at the same ``seq``."""

from __future__ import annotations

from pathlib import Path

from exchange.engine.recovery import events_since, recover
from exchange.protocol import encode
from exchange.protocol.messages import AdvanceTime, NewOrder, SetStatus
from exchange.replay import main as replay_main
from tests.unit.test_journal_recovery import JournaledCore, _toml, run_uninterrupted


def _commands() -> list[tuple[str, object]]:
    """Stops both ways, scheduled orders (due 15 commands later) and reduce-only exits among
    a market that walks down then up; ``AdvanceTime`` ticks. Command i gets ts i + 1."""
    out: list[tuple[str, object]] = []
    for i in range(70):
        account = "abc"[i % 3]
        px = 100.0 - (i % 20) * 0.25 if i < 40 else 95.0 + (i - 40) * 0.25
        if i % 6 == 0:
            out.append(
                (
                    account,
                    NewOrder(
                        symbol="XYZ", side="sell", qty=1, order_type="stop", trigger_price=px - 0.5
                    ),
                )
            )
        elif i % 6 == 1:
            out.append(
                (
                    account,
                    NewOrder(
                        symbol="XYZ",
                        side="buy",
                        qty=1,
                        order_type="stop_limit",
                        trigger_price=px + 1.0,
                        price=px + 1.25,
                    ),
                )
            )
        elif i % 6 == 2:
            out.append(
                (account, NewOrder(symbol="XYZ", side="buy", qty=2, price=px, activate_at=i + 15))
            )
        elif i % 6 == 3:
            out.append(("", AdvanceTime()))
        elif i % 6 == 4:
            out.append(
                (
                    account,
                    NewOrder(symbol="XYZ", side="sell", qty=3, price=px, reduce_only=i % 12 == 4),
                )
            )
        else:
            out.append((account, NewOrder(symbol="XYZ", side="buy", qty=2, price=px)))
    return out  # fmt: skip


def test_replaying_the_journal_fires_and_activates_at_the_same_seq(tmp_path: Path) -> None:
    cmds = _commands()
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == 35:
            journaled.snapshot()
    journaled.writer.close()
    fired = [
        (e.seq, e.order_id) for e in journaled.events if getattr(e, "exec_type", "") == "triggered"
    ]
    assert len(fired) >= 5
    state = recover(tmp_path, journaled.config)
    assert state.snapshot_index == 35 and state.problems == []
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()
    regenerated = [e for batch in events_since(tmp_path, journaled.config, 0) for e in batch]
    assert encode(regenerated) == encode([e for e in journaled.events if getattr(e, "seq", None)])
    assert [
        (e.seq, e.order_id) for e in regenerated if getattr(e, "exec_type", "") == "triggered"
    ] == fired
    assert replay_main(["--data-dir", str(tmp_path), "--config", str(_toml(tmp_path))]) == 0


def _auction_commands() -> list[tuple[str, object]]:
    """An auction that collects crossing orders (icebergs and stops among them), opens by its
    timer through ``AdvanceTime``, then a circuit-breaker-free market trades on. Command i
    gets ts i + 1; the auction (set at ts 1) ends at ts 31."""
    out: list[tuple[str, object]] = [
        ("", SetStatus(symbol="XYZ", status="auction", auction_s=30e-9))
    ]
    for i in range(1, 60):
        account = "abc"[i % 3]
        side = "buy" if i % 2 else "sell"
        px = 100.0 + (0.5 if side == "buy" else -0.5) * (i % 4)
        if i % 5 == 0:
            out.append(("", AdvanceTime()))
        elif i % 7 == 0:
            stop = NewOrder(symbol="XYZ", side="sell", qty=1, order_type="stop", trigger_price=99.5)
            out.append((account, stop))
        else:
            display = 2 if i % 3 == 0 else None
            order = NewOrder(symbol="XYZ", side=side, qty=4, price=px, display_qty=display)
            out.append((account, order))
    return out  # fmt: skip


def test_a_crash_during_an_auction_recovers_the_uninterrupted_state(tmp_path: Path) -> None:
    """Kill -9 mid-auction (snapshot taken in the auction, journal tail after it, no clean
    close): recovery gives the same state as a clean replay, and the uncross happens at the
    same seq when the events are regenerated."""
    cmds = _auction_commands()
    journaled = JournaledCore(tmp_path)
    for ts, (account, command) in enumerate(cmds, start=1):
        journaled.apply(account, command, ts)
        if ts == 20:
            journaled.snapshot()  # in the auction
    journaled.writer.write()  # what a kill -9 leaves: written, never closed
    uncross = [e for e in journaled.events if getattr(e, "aggressor", "") == "auction"]
    assert uncross, "the auction never uncrossed: the test proves little"
    state = recover(tmp_path, journaled.config)
    assert state.problems == []
    assert state.core.state_hash() == run_uninterrupted(cmds).state_hash()
    regenerated = [e for batch in events_since(tmp_path, journaled.config, 0) for e in batch]
    assert encode(regenerated) == encode([e for e in journaled.events if getattr(e, "seq", None)])
