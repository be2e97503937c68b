"""Fault injection on the real processes (issue 5): restart the gateway, the relay, the engine
under the exporter's feet, and start the engine on a damaged journal.

- (a) SIGKILL the gateway while three clients trade; restart it on the same port; the clients
  reconnect. Every order a client saw acknowledged has, in ``get_orders``, exactly the state
  that trades.csv implies (fills the client missed while disconnected included); trades.csv
  holds every reported trade once, ids gapless.
- (b) SIGKILL the relay under load; restart it on the same port. A subscriber that reconnects
  gets a fresh ``book_snapshot`` then an unbroken ``prev_seq`` chain, and its book equals the
  relay's ``GET /api/v1/book`` and the engine's own book.
- (c) With ``event_history = 50``, the exporter is stopped, the engine restarted (clean stop or
  SIGKILL) and the exporter started again after much more trading: the seq it resumes from is
  far older than anything the engine holds in memory, so its rows come from the journal on
  disk. trades.csv and performance.csv equal the engine's whole event history (served from
  disk too), every row once, no gap, and hold every trade the clients were told about.
- (d) The engine is stopped, the newest journal records are damaged (a torn last record after
  a crash; a flipped byte after a clean stop, behind the shutdown snapshot), and
  ``python -m exchange`` starts anyway: it logs ``journal_damaged``, serves orders, survives a
  further kill -9 and restart, and ``python -m exchange.replay`` then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from exchange.engine.journal import list_segments, read_segment
from tests.acceptance.harness import (
    Trader,
    check_orders,
    config_file,
    engine_argv,
    engine_book,
    engine_events,
    engine_last_seq,
    exporter_argv,
    filled_by_order,
    gateway_argv,
    kill,
    live_orders,
    read_csv,
    relay_argv,
    relay_book_equals,
    trade,
    wait_exported,
    wait_for_trades,
    wait_healthy,
)
from tests.integration.clients import gateway_client
from tests.integration.feed_client import FeedClient
from tests.integration.live_system import LiveSystem, live_system
from tests.support import REPO_ROOT, seconds

ACCOUNTS = ("maker1", "taker1", "mm1")
SYMBOL = "AAPL"
DEPTH = 100
"""Deeper than any book the traders build (their prices span 10 ticks a side)."""


class Load:
    """Three traders sending orders through the gateway until ``stop()``."""

    def __init__(self, system: LiveSystem) -> None:
        self.traders = [Trader(name, seed) for seed, name in enumerate(ACCOUNTS)]
        self._stop = asyncio.Event()
        self._flows = [asyncio.create_task(trade(system, t, self._stop)) for t in self.traders]

    @property
    def trades_seen(self) -> int:
        return sum(len(t.trades) for t in self.traders)

    async def more_trades(self, count: int, timeout: float = 30) -> None:
        """Wait until the clients have been told about ``count`` more trades."""
        await wait_for_trades(self.trades_seen + count, self.traders, timeout)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._flows), seconds(30))

    def reported(self) -> dict[int, tuple[float, int]]:
        """Every trade a client was told about: trade id -> (price, qty)."""
        return {tid: v for trader in self.traders for tid, v in trader.trades.items()}


def check_trades_csv(rows: list[dict[str, str]], load: Load) -> None:
    """Trade ids 1..N without a gap or a repeat; every reported trade with its price/qty."""
    ids = [int(row["trade_id"]) for row in rows]
    assert ids == list(range(1, len(ids) + 1)), "trade ids must be unique and gapless"
    seqs = [int(row["seq"]) for row in rows]
    assert seqs == sorted(set(seqs)), "trade rows must be in seq order, each once"
    by_id = {int(row["trade_id"]): row for row in rows}
    reported = load.reported()
    assert reported, "no trades were reported"
    for trade_id, (price, qty) in reported.items():
        row = by_id.get(trade_id)
        assert row is not None, f"trade {trade_id} reported to a client but not exported"
        assert (float(row["price"]), int(row["qty"])) == (price, qty), row


async def read_forever(feed: FeedClient) -> None:
    """Apply (and so check) everything the relay sends until the connection drops."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await feed.read(timeout=60)


async def stop_reading(reading: asyncio.Task[None]) -> None:
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading


# ---------------------------------------------------------------------------------- (a)


async def test_kill_9_gateway_under_load_clients_reconnect(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        await system.start("exporter", exporter_argv(system))
        load = Load(system)
        try:
            await load.more_trades(100)
            await kill(system, "gateway")
            acknowledged = {t.account: set(t.last) for t in load.traders}
            await system.start("gateway", gateway_argv(system), wait_listening=True)
            await load.more_trades(100)
        finally:
            await load.stop()
        assert all(t.connections >= 2 for t in load.traders), "a client did not reconnect"

        out = tmp_path / "out"
        await wait_exported(out, await engine_last_seq(system), timeout=10)
        rows = read_csv(out / "trades.csv")
        check_trades_csv(rows, load)
        # Every order a client saw acknowledged has the state the engine's fills imply.
        filled = filled_by_order(rows)
        for trader in load.traders:
            assert acknowledged[trader.account] <= set(trader.last)
            check_orders(trader, await live_orders(system, trader.account), filled)
        assert await system.terminate("exporter") == 0


# ---------------------------------------------------------------------------------- (b)


async def test_kill_9_relay_under_load_subscriber_resyncs(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        url = f"ws://127.0.0.1:{system.marketdata_port}"
        load = Load(system)
        try:
            before = await FeedClient.open(url, depth=DEPTH)
            await before.subscribe(f"book.{SYMBOL}", f"trades.{SYMBOL}")
            reading = asyncio.create_task(read_forever(before))
            await load.more_trades(100)
            await kill(system, "marketdata")
            await asyncio.wait_for(reading, seconds(5))  # the subscriber sees the close
            assert before.books[SYMBOL].updates > 0
            await system.start("marketdata", relay_argv(system), wait_listening=True)
            after = await FeedClient.open(url, depth=DEPTH)
            await after.subscribe(f"book.{SYMBOL}", f"trades.{SYMBOL}")
            reading = asyncio.create_task(read_forever(after))
            await load.more_trades(100)
        finally:
            await load.stop()
        await stop_reading(reading)

        # A fresh snapshot, newer than anything the first connection had, then a chain.
        first = next(m for m in after.seen if m["type"] in ("book_snapshot", "book_update"))
        assert first["type"] == "book_snapshot" and len(after.snapshots) == 1
        assert first["seq"] >= before.books[SYMBOL].seq
        _, bids, asks = await engine_book(system, SYMBOL)
        assert len(bids) < DEPTH and len(asks) < DEPTH
        relay_book = await relay_book_equals(system, SYMBOL, bids, asks)
        await after.sync({SYMBOL: relay_book["seq"]}, timeout=10)
        assert after.books[SYMBOL].ladder() == (bids, asks)
        assert after.books[SYMBOL].updates > 0
        ids = [t["trade_id"] for t in after.trades]
        assert ids == list(range(ids[0], ids[0] + len(ids))), "public trades skipped an id"
        await after.close()


# ---------------------------------------------------------------------------------- (c)


@pytest.mark.parametrize("engine_stop", ["sigterm", "sigkill"])
async def test_exporter_resumes_from_the_journal_after_an_engine_restart(
    tmp_path: Path, engine_stop: str
) -> None:
    history = 50
    config = config_file(tmp_path / "system.toml", event_history=history)
    out = tmp_path / "out"
    async with live_system(tmp_path, config) as system:
        await system.start("exporter", exporter_argv(system))
        load = Load(system)
        try:
            await load.more_trades(60)
            await wait_exported(out, await engine_last_seq(system), timeout=10)
            assert await system.terminate("exporter") == 0
            exported = [
                e for e in system.log_events("exporter") if e["event"] == "exporter_stopped"
            ]
            resume_from = exported[-1]["seq"]
            await load.more_trades(60)
            if engine_stop == "sigterm":
                assert await system.terminate("engine") == 0
            else:
                await kill(system, "engine")
            await system.start("engine", engine_argv(system), wait_listening=True)
            await wait_healthy(system.gateway_port, timeout=20)
            await load.more_trades(60)
            restarted_at = await engine_last_seq(system)
            await system.start("exporter", exporter_argv(system))
            await load.more_trades(60)  # the exporter catches up while the load goes on
        finally:
            await load.stop()
        for trader in load.traders:  # the gateway kept the sessions and answered everything
            assert trader.connections == 1 and trader.unanswered == set(), trader.account
        last = await engine_last_seq(system)
        await wait_exported(out, last, timeout=20)

        exporter_log = system.log_events("exporter")
        started = [e for e in exporter_log if e["event"] == "exporter_started"]
        assert started[-1]["since"] == resume_from
        assert resume_from + history < restarted_at, "the engine's memory still held it"
        assert not [e for e in exporter_log if e["event"] == "history_unavailable"]

        # Every row exactly once, no gap: the same as the engine's whole history (which the
        # event port regenerates from the journal too).
        events = await engine_events(system, since=0, until=last)
        assert [e["seq"] for e in events] == list(range(1, last + 1))
        fills = [e for e in events if e["type"] == "fill"]
        updates = [e for e in events if e["type"] == "account_update"]
        rows = [r for r in read_csv(out / "trades.csv") if int(r["seq"]) <= last]
        check_trades_csv(rows, load)
        assert [(int(r["seq"]), int(r["trade_id"])) for r in rows] == [
            (f["seq"], f["trade_id"]) for f in fills
        ]
        performance = [r for r in read_csv(out / "performance.csv") if int(r["seq"]) <= last]
        assert [(int(r["seq"]), r["account"]) for r in performance] == [
            (u["seq"], u["account"]) for u in updates
        ]
        assert await system.terminate("exporter") == 0


# ---------------------------------------------------------------------------------- (d)


def damage(segment: Path, how: str) -> None:
    """Tear the last record of ``segment`` (cut its last bytes) or flip one of its bytes."""
    records, scan = read_segment(segment)
    assert scan.problem is None and len(records) >= 2, scan
    data = bytearray(segment.read_bytes())
    if how == "truncate":
        segment.write_bytes(bytes(data[:-3]))
    else:
        data[len(data) - 5] ^= 0x40  # inside the last record's payload
        segment.write_bytes(bytes(data))


def newest_records_segment(data_dir: Path) -> Path:
    """The newest journal segment that holds records (a clean stop leaves an empty one)."""
    for _first, path in reversed(list_segments(data_dir)):
        if path.stat().st_size:
            return path
    raise AssertionError("no journal records")


async def place_orders(system: LiveSystem, count: int) -> None:
    """``count`` orders from two accounts, half of them crossing; waits for every report."""
    async with (
        gateway_client(system.gateway_port, "maker1-key") as maker,
        gateway_client(system.gateway_port, "taker1-key") as taker,
    ):
        for n in range(count):
            price = round(190.0 + (n % 3) * 0.01, 2)
            await maker.send(
                {"type": "new_order", "symbol": SYMBOL, "side": "sell", "qty": 2, "price": price}
            )
            await maker.expect("execution_report", exec_type="new", timeout=10)
            if n % 2:
                await taker.send(
                    {"type": "new_order", "symbol": SYMBOL, "side": "buy", "qty": 1, "price": price}
                )
                await taker.expect("execution_report", status="filled", timeout=10)


@pytest.mark.parametrize(("engine_stop", "how"), [("sigkill", "truncate"), ("sigterm", "flip")])
async def test_engine_starts_on_a_damaged_journal(
    tmp_path: Path, engine_stop: str, how: str
) -> None:
    config = config_file(tmp_path / "system.toml", snapshot_interval_s=0)
    data = tmp_path / "data"
    async with live_system(tmp_path, config) as system:
        await place_orders(system, 6)
        if engine_stop == "sigterm":
            assert await system.terminate("engine") == 0
        else:
            await kill(system, "engine")
        segment = newest_records_segment(data)
        damage(segment, how)

        await system.start("engine", engine_argv(system), wait_listening=True)
        damaged = [e for e in system.log_events("engine") if e["event"] == "journal_damaged"]
        assert damaged and segment.name in damaged[0]["problem"], damaged
        if engine_stop == "sigterm":  # the shutdown snapshot holds the damaged record
            assert any("snapshot-" in e["problem"] and "set aside" in e["problem"] for e in damaged)
        await wait_healthy(system.ports["engine_command_port"], timeout=10)
        await wait_healthy(system.gateway_port, timeout=20)
        await place_orders(system, 4)  # it serves: orders are accepted and trade

        # What recovery set aside stays aside: a crash and a restart find a consistent state.
        await kill(system, "engine")
        await system.start("engine", engine_argv(system), wait_listening=True)
        assert len(
            [e for e in system.log_events("engine") if e["event"] == "journal_damaged"]
        ) == len(damaged), "the second start found damage again"
        await wait_healthy(system.gateway_port, timeout=20)
        await place_orders(system, 2)
        assert await system.terminate("engine") == 0

    replay = subprocess.run(
        [sys.executable, "-m", "exchange.replay", "--data-dir", str(data), "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
