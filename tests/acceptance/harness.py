"""Shared pieces of the acceptance tests on real processes: clients that trade under load,
argv builders for restarting a process of a ``LiveSystem`` on its old ports, the CSV files,
and bounded waits (every one through ``tests.support.seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import random
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from exchange.protocol.config import DEFAULT_CONFIG_PATH
from tests.integration.clients import event_client, gateway_client, http_get
from tests.integration.live_system import LiveSystem, procfile_command
from tests.support import seconds

LIVE = {"new", "partially_filled"}
DONE = {"filled", "canceled", "rejected", "expired"}
MAX_LIVE_ORDERS = 30
"""Past this many live orders a trader cancels its oldest instead of placing another, so that a
long run never reaches the account's max_open_orders (200) and stops trading."""


class Trader:
    """Sends orders (and cancels, to keep its live orders bounded) and remembers the last
    report of each of its orders."""

    def __init__(self, account: str, seed: int) -> None:
        self.account = account
        self.rng = random.Random(seed)
        self.last: dict[int, dict[str, Any]] = {}
        self.trades: dict[int, tuple[float, int]] = {}
        self.live: set[int] = set()
        """Orders whose last report says live."""
        self.cancels_sent: set[int] = set()
        """Orders this trader asked to cancel (the answer may have been lost in a crash)."""
        self.unavailable = 0
        """Requests answered ``engine_unavailable`` (a report, cancel_reject or error)."""
        self.connections = 0
        self.sent: set[int] = set()
        """The ``req_id`` of every request sent (integers, from 1)."""
        self.answered: set[int] = set()
        """The ``req_id`` (``ref`` for an ``error``) of every direct reply received."""

    @property
    def unanswered(self) -> set[int]:
        """Requests that got no direct reply (nor an ``engine_unavailable``) at all."""
        return self.sent - self.answered

    def record(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        answer = message.get("ref") if kind == "error" else message.get("req_id")
        if type(answer) is int:
            self.answered.add(answer)
        if "engine_unavailable" in (message.get("reject_reason"), message.get("code")):
            self.unavailable += 1
        if kind != "execution_report":
            return
        order_id = message.get("order_id")
        if order_id is None or message.get("account") != self.account:
            return
        self.last[order_id] = message
        if message["status"] in LIVE:
            self.live.add(order_id)
        else:
            self.live.discard(order_id)
        if message["exec_type"] == "trade":
            self.trades[message["trade_id"]] = (message["last_px"], message["last_qty"])

    def next_message(self) -> dict[str, Any]:
        """A cancel of the oldest live order when there are too many, else a new order; each
        with a fresh integer ``req_id`` (remembered in ``sent``)."""
        req_id = len(self.sent) + 1
        self.sent.add(req_id)
        if len(self.live) > MAX_LIVE_ORDERS:
            candidates = self.live - self.cancels_sent
            if candidates:
                order_id = min(candidates)
                self.cancels_sent.add(order_id)
                return {"type": "cancel_order", "order_id": order_id, "req_id": req_id}
        return {**self.next_order(), "req_id": req_id}

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
                trader.connections += 1

                async def reader(c: Any = client) -> None:
                    # No asyncio.wait_for here: on Python 3.11 it can swallow the cancel
                    # below when a frame arrives at the same moment, and hang the flow.
                    async for frame in c.ws:
                        parsed = json.loads(frame)
                        for message in parsed if isinstance(parsed, list) else [parsed]:
                            trader.record(message)

                reading = asyncio.create_task(reader())
                try:
                    while not stop.is_set():
                        await client.send(trader.next_message())
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


def engine_argv(system: LiveSystem) -> list[str]:
    """The engine's Procfile line on the system's ports, data and log directories."""
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
        *system.config_args,
    ]


def gateway_argv(system: LiveSystem) -> list[str]:
    """The gateway's Procfile line on the system's gateway port."""
    return [
        *procfile_command("gateway"),
        "--port",
        str(system.gateway_port),
        "--rest-port",
        str(system.ports.get("gateway_rest_port", 0)),
        "--engine",
        f"ws://127.0.0.1:{system.ports['engine_command_port']}",
        "--log-dir",
        str(system.tmp / "logs"),
        *system.config_args,
    ]


def relay_argv(system: LiveSystem) -> list[str]:
    """The relay's Procfile line on the system's market-data port."""
    return [
        *procfile_command("marketdata"),
        "--port",
        str(system.marketdata_port),
        "--upstream",
        f"ws://127.0.0.1:{system.ports['engine_event_port']}",
        "--log-dir",
        str(system.tmp / "logs"),
        *system.config_args,
    ]


def exporter_argv(system: LiveSystem) -> list[str]:
    """The exporter's Procfile line writing to ``tmp/out``."""
    return [
        *procfile_command("exporter"),
        "--upstream",
        f"ws://127.0.0.1:{system.ports['engine_event_port']}",
        "--out",
        str(system.tmp / "out"),
        "--log-dir",
        str(system.tmp / "logs"),
        *system.config_args,
    ]


async def kill(system: LiveSystem, name: str) -> None:
    """SIGKILL ``name`` and reap it."""
    child = system.processes[name]
    child.send_signal(signal.SIGKILL)
    await asyncio.wait_for(child.wait(), seconds(5))


def config_file(path: Path, **engine: object) -> Path:
    """Write the shipped config to ``path`` with some ``[engine]`` values replaced or added
    (instruments and accounts must stay: a journal replays only under its own config)."""
    text = DEFAULT_CONFIG_PATH.read_text()
    head, marker, section = text.partition("\n[engine]\n")
    assert marker, "the shipped config has an [engine] section"
    body, separator, rest = section.partition("\n[")
    for key, value in engine.items():
        line = f"{key} = {json.dumps(value)}"
        body, found = re.subn(rf"^{key} = .*$", line, body, flags=re.MULTILINE)
        if not found:
            body += f"\n{line}"
    path.write_text(head + marker + body + separator + rest)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


async def engine_last_seq(system: LiveSystem) -> int:
    """The engine's last seq, from the snapshot its event port sends a fresh consumer."""
    async with event_client(system.ports["engine_event_port"]) as stream:
        return int((await stream.expect("snapshot", timeout=10))["seq"])


async def wait_exported(out: Path, seq: int, timeout: float) -> None:
    """Poll the exporter's state file until every event up to ``seq`` is on disk."""
    state = out / ".exporter-state.json"
    deadline = asyncio.get_running_loop().time() + seconds(timeout)
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(state.read_text())["seq"] >= seq:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the exporter never reached seq {seq}")
        await asyncio.sleep(0.05)  # polling a file for a condition, bounded


async def engine_book(system: LiveSystem, symbol: str) -> tuple[int, list[Any], list[Any]]:
    """The engine's own book of ``symbol`` at full depth, from a fresh event-port snapshot:
    (the snapshot's seq, bids, asks)."""
    async with event_client(system.ports["engine_event_port"]) as stream:
        snapshot = await stream.expect("snapshot", timeout=10)
    (book,) = [b for b in snapshot["books"] if b["symbol"] == symbol]
    return snapshot["seq"], book["bids"], book["asks"]


async def relay_book_equals(
    system: LiveSystem, symbol: str, bids: list[Any], asks: list[Any]
) -> dict[str, Any]:
    """Poll the relay's ``GET /api/v1/book/SYMBOL`` until it shows ``bids``/``asks``;
    returns that ``book_snapshot``."""
    deadline = asyncio.get_running_loop().time() + seconds(10)
    while True:
        status, body = await http_get(system.marketdata_port, f"/api/v1/book/{symbol}?depth=100")
        book = json.loads(body)
        if status == 200 and (book["bids"], book["asks"]) == (bids, asks):
            return dict(book)
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"relay book {book} never became {bids} / {asks}")
        await asyncio.sleep(0.05)  # polling the relay's HTTP API for a condition, bounded


async def engine_events(system: LiveSystem, since: int, until: int) -> list[dict[str, Any]]:
    """Every event the engine's event port streams after ``since`` up to ``until``."""
    events: list[dict[str, Any]] = []
    async with event_client(system.ports["engine_event_port"], since=since) as stream:
        while not events or events[-1]["seq"] < until:
            message = await stream.next(timeout=20)
            assert message["type"] != "snapshot", f"the engine could not serve since={since}"
            if message.get("seq") is not None:
                events.append(message)
    return [event for event in events if event["seq"] <= until]


async def live_orders(system: LiveSystem, account: str) -> dict[int, dict[str, Any]]:
    """``get_orders`` of ``account`` through the gateway: its live orders by id."""
    async with gateway_client(system.gateway_port, f"{account}-key") as client:
        await client.send({"type": "get_orders", "req_id": "truth"})
        reply = await client.expect("orders", req_id="truth", timeout=10)
    return {order["order_id"]: order for order in reply["orders"]}


def filled_by_order(rows: list[dict[str, str]]) -> Counter[int]:
    """The quantity trades.csv ``rows`` filled, per order id."""
    filled: Counter[int] = Counter()
    for row in rows:
        filled[int(row["buy_order_id"])] += int(row["qty"])
        filled[int(row["sell_order_id"])] += int(row["qty"])
    return filled


def check_orders(trader: Trader, live: dict[int, dict[str, Any]], filled: Counter[int]) -> None:
    """Every order ``trader`` saw acknowledged is in the state that the engine's fills
    (``filled``, from trades.csv) imply, and ``get_orders`` (``live``) shows exactly that.

    Fills a client was never told of are allowed: a kill loses the reports of commands that
    were journaled but not yet answered, and a killed gateway those of its absent clients.
    """
    for order_id, report in trader.last.items():
        done = filled[order_id]
        assert done >= report["cum_qty"], ("fills missing from trades.csv", report)
        if order_id in live:
            assert report["status"] in LIVE, ("a finished order is live", report)
            order = live[order_id]
            assert (order["cum_qty"], order["qty"]) == (done, report["qty"]), (report, order)
            assert order["leaves_qty"] == order["qty"] - done, order
        elif report["status"] in LIVE:
            # Finished unseen: filled, or cancelled by a request whose answer was lost
            # (nothing else ends a resting GTC order of these traders).
            assert done == report["qty"] or order_id in trader.cancels_sent, (
                "an acknowledged order is lost",
                report,
            )
        else:
            assert done == report["cum_qty"], report
