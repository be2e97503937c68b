"""Fault injection on the real processes: kill -9 the engine and the exporter under load.

Three clients trade continuously through the gateway. Mid-flow the engine is killed with
SIGKILL and restarted on the same ports (the gateway, relay and exporter reconnect on their
own); the exporter is killed and restarted too. Afterwards:

- every order a client saw acknowledged and still live is live in the engine with the same
  filled quantity, and every order a client saw finished is not;
- the engine's final state (snapshotted at a clean shutdown) equals a from-scratch replay of
  its journal (``python -m exchange.replay`` exits 0);
- trades.csv holds every trade the clients were told about, each exactly once, with trade
  ids 1..N and no gap, and the same price and quantity as reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.clients import gateway_client, http_get
from tests.integration.live_system import LiveSystem, live_system, procfile_command
from tests.support import REPO_ROOT, seconds

ACCOUNTS = ("maker1", "taker1", "mm1")
LIVE = {"new", "partially_filled"}


class Trader:
    """Sends orders and remembers the last report of each of its orders."""

    def __init__(self, account: str, seed: int) -> None:
        self.account = account
        self.rng = random.Random(seed)
        self.last: dict[int, dict[str, Any]] = {}
        self.trades: dict[int, tuple[float, int]] = {}
        self.unavailable = 0

    def record(self, message: dict[str, Any]) -> None:
        if message.get("type") != "execution_report":
            return
        if message.get("reject_reason") == "engine_unavailable":
            self.unavailable += 1
        order_id = message.get("order_id")
        if order_id is None or message.get("account") != self.account:
            return
        self.last[order_id] = message
        if message["exec_type"] == "trade":
            self.trades[message["trade_id"]] = (message["last_px"], message["last_qty"])

    def next_order(self) -> dict[str, Any]:
        side = self.rng.choice(["buy", "sell"])
        offset = self.rng.randint(-3, 6) * 0.01
        price = round(190.0 - offset if side == "buy" else 190.0 + offset, 2)
        return {
            "type": "new_order",
            "symbol": "AAPL",
            "side": side,
            "qty": self.rng.randint(1, 5),
            "price": price,
        }


async def trade(system: LiveSystem, trader: Trader, stop: asyncio.Event) -> None:
    """Keep sending orders (reconnecting if the gateway drops us) until ``stop``."""
    api_key = f"{trader.account}-key"
    while not stop.is_set():
        try:
            async with gateway_client(system.gateway_port, api_key) as client:

                async def reader(c: Any = client) -> None:
                    while True:
                        trader.record(await c.next(timeout=60))

                reading = asyncio.create_task(reader())
                try:
                    while not stop.is_set():
                        await client.send(trader.next_order())
                        await asyncio.sleep(0.004)  # pacing the offered load, not a sync
                finally:
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reading
                # Everything sent before this ping is answered before its pong.
                for message in list(client.buffer) + await client.sync(timeout=10):
                    trader.record(message)
                return
        except (OSError, TimeoutError, ConnectionError):
            await asyncio.sleep(0.05)  # gateway restarting: retry
        except Exception as exc:  # websockets' ConnectionClosed and friends
            if "ConnectionClosed" not in type(exc).__name__:
                raise
            await asyncio.sleep(0.05)


async def wait_healthy(port: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds(timeout)
    while True:
        with contextlib.suppress(OSError, TimeoutError):
            status, _ = await http_get(port, "/healthz", timeout=1)
            if status == 200:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"port {port} never became healthy")
        await asyncio.sleep(0.05)  # polling a health endpoint with a deadline


async def wait_for_trades(trader_count: int, traders: list[Trader], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds(timeout)
    while sum(len(t.trades) for t in traders) < trader_count:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the clients saw too few trades")
        await asyncio.sleep(0.02)  # waiting for load to build up, bounded


def exporter_argv(system: LiveSystem) -> list[str]:
    return [
        *procfile_command("exporter"),
        "--upstream",
        f"ws://127.0.0.1:{system.ports['engine_event_port']}",
        "--out",
        str(system.tmp / "out"),
        "--log-dir",
        str(system.tmp / "logs"),
    ]


def engine_argv(system: LiveSystem) -> list[str]:
    return [
        *procfile_command("engine"),
        "--command-port",
        str(system.ports["engine_command_port"]),
        "--event-port",
        str(system.ports["engine_event_port"]),
        "--data-dir",
        str(system.tmp / "data"),
        "--log-dir",
        str(system.tmp / "logs"),
    ]


async def kill(system: LiveSystem, name: str) -> None:
    child = system.processes[name]
    child.send_signal(signal.SIGKILL)
    await asyncio.wait_for(child.wait(), seconds(5))


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

        # Every acknowledged order has the state its owner last saw.
        for trader in traders:
            async with gateway_client(system.gateway_port, f"{trader.account}-key") as client:
                await client.send({"type": "get_orders", "req_id": "truth"})
                reply = await client.expect("orders", req_id="truth", timeout=10)
            live = {order["order_id"]: order for order in reply["orders"]}
            for order_id, report in trader.last.items():
                if report["status"] in LIVE:
                    assert order_id in live, (trader.account, report)
                    assert live[order_id]["cum_qty"] == report["cum_qty"], (report, live[order_id])
                else:
                    assert order_id not in live, (trader.account, report)

        recovered = [e for e in system.log_events("engine") if e["event"] == "engine_recovered"]
        assert recovered[-1]["last_seq"] > 0, "the restarted engine did not recover any state"
        assert await system.terminate("exporter") == 0
        assert await system.terminate("gateway") == 0
        assert await system.terminate("marketdata") == 0
        assert await system.terminate("engine") == 0

    # The engine's final state equals a clean replay of its journal.
    replay = subprocess.run(
        [sys.executable, "-m", "exchange.replay", "--data-dir", str(tmp_path / "data")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "MISMATCH" not in replay.stdout

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
