"""Fault injection on the real processes: kill -9 the engine and the exporter under load.

Three clients trade continuously through the gateway. Mid-flow the engine is killed with
SIGKILL and restarted on the same ports (the gateway, relay and exporter reconnect on their
own); the exporter is killed and restarted too. Afterwards:

- every order a client saw acknowledged is in the state the exported fills imply: live in
  ``get_orders`` with at least the filled quantity its owner saw (more only when the kill
  lost the report of a journaled fill), and every order a client saw finished is not live;
- the gateway keeps every client session open across the engine restart and answers every
  request (``req_id``) with its report or ``engine_unavailable``;
- the engine's final state (snapshotted at a clean shutdown) equals a from-scratch replay of
  its journal (``python -m exchange.replay`` exits 0 and compares that snapshot);
- trades.csv holds every trade the clients were told about, each exactly once, with trade
  ids 1..N and no gap, and the same price and quantity as reported.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

from tests.acceptance.harness import (
    Trader,
    check_orders,
    engine_argv,
    engine_last_seq,
    exporter_argv,
    filled_by_order,
    kill,
    live_orders,
    read_csv,
    trade,
    wait_exported,
    wait_for_trades,
    wait_healthy,
)
from tests.integration.live_system import live_system
from tests.support import REPO_ROOT, seconds

ACCOUNTS = ("maker1", "taker1", "mm1")


async def test_kill_9_engine_and_exporter_under_load(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        await system.start("exporter", exporter_argv(system))
        traders = [Trader(name, seed) for seed, name in enumerate(ACCOUNTS)]
        stop = asyncio.Event()
        flows = [asyncio.create_task(trade(system, t, stop)) for t in traders]
        try:
            await wait_for_trades(150, traders, timeout=60)
            await kill(system, "exporter")
            await kill(system, "engine")
            await system.start("engine", engine_argv(system), wait_listening=True)
            await system.start("exporter", exporter_argv(system))
            await wait_healthy(system.gateway_port, timeout=20)
            seen = sum(len(t.trades) for t in traders)
            await wait_for_trades(seen + 150, traders, timeout=60)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*flows), seconds(30))

        # The gateway kept every client session open across the engine restart and answered
        # every request: with its report, or engine_unavailable while the engine was away.
        for trader in traders:
            assert trader.connections == 1, f"{trader.account}'s session was closed"
            assert trader.unanswered == set(), (trader.account, sorted(trader.unanswered)[:10])
        assert sum(t.unavailable for t in traders) > 0, "no client traded through the outage"

        # Every acknowledged order has the state its owner last saw, or the one that the
        # exported fills imply when the kill lost a report.
        await wait_exported(tmp_path / "out", await engine_last_seq(system), timeout=20)
        filled = filled_by_order(read_csv(tmp_path / "out" / "trades.csv"))
        for trader in traders:
            check_orders(trader, await live_orders(system, trader.account), filled)

        recovered = [e for e in system.log_events("engine") if e["event"] == "engine_recovered"]
        assert recovered[-1]["last_seq"] > 0, "the restarted engine did not recover any state"
        assert await system.terminate("exporter") == 0
        assert await system.terminate("gateway") == 0
        assert await system.terminate("marketdata") == 0
        assert await system.terminate("engine") == 0
        stopped = [e for e in system.log_events("engine") if e["event"] == "engine_stopped"]
        final_seq = stopped[-1]["last_seq"]

    # The engine's final state (its shutdown snapshot, at the end of the journal) equals a
    # clean replay of its journal from scratch.
    replay = subprocess.run(
        [sys.executable, "-m", "exchange.replay", "--data-dir", str(tmp_path / "data")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "MISMATCH" not in replay.stdout
    assert f"seq {final_seq}, replayed from scratch" in replay.stdout, replay.stdout
    assert f"(seq {final_seq}) + 0 records: OK" in replay.stdout, replay.stdout

    # trades.csv: every reported trade exactly once, ids gapless, same price and quantity.
    with (tmp_path / "out" / "trades.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    ids = [int(row["trade_id"]) for row in rows]
    assert ids == list(range(1, len(ids) + 1)), "trade ids must be unique and gapless"
    by_id = {int(row["trade_id"]): row for row in rows}
    reported = {tid: v for trader in traders for tid, v in trader.trades.items()}
    assert reported, "no trades were reported"
    for trade_id, (price, qty) in reported.items():
        row = by_id.get(trade_id)
        assert row is not None, f"trade {trade_id} reported to a client but not exported"
        assert (float(row["price"]), int(row["qty"])) == (price, qty)
    # Trades a client never heard of can only be those of commands in flight at the kill.
    assert len(by_id) - len(reported) <= 50
