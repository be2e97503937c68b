"""The acceptance test of the running exchange (issue 3), on the real processes.

Engine, gateway, relay and exporter are started with their Procfile commands (port 0, data,
logs and CSVs in a temporary directory). Three accounts trade AAPL through the gateway: limit
orders that rest and cross, a cancel, two amends (a smaller quantity, a new price), market
orders that fill and one that runs out of liquidity. Then:

- execution reports (PROTOCOL.md §3): every order gets ``new``, then its ``trade``s, then at
  most one terminal report; ``qty == cum_qty + leaves_qty`` while live, ``leaves_qty == 0``
  when done; replies to a request echo its ``req_id``; each trade carries the right price,
  quantity, liquidity and fee;
- a relay subscriber (§4) gets ``book_snapshot`` then ``book_update``s chained by
  ``prev_seq``, and the book it rebuilds equals the relay's ``GET /api/v1/book/AAPL`` and the
  engine's own book (its event-port snapshot); trades carry no account names; the last
  ``bbo`` is the top of that book;
- trades.csv and performance.csv (§5) have the exact headers, one trade row per trade with the
  ids, prices, quantities, accounts, order ids and fees the clients were told, and
  performance rows for every account that traded whose cash and fees match ``get_account``;
- SIGTERM to every process at once: each exits 0 within 5 s, and the journal replays clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from exporter.csv_rows import iso_ts
from tests.acceptance.harness import (
    DONE,
    LIVE,
    engine_book,
    exporter_argv,
    read_csv,
    relay_book_equals,
    wait_exported,
)
from tests.integration.clients import WsClient, gateway_client, http_get
from tests.integration.feed_client import FeedClient
from tests.integration.live_system import LiveSystem, live_system
from tests.support import REPO_ROOT, seconds

Message = dict[str, Any]
SYMBOL = "AAPL"
MAKER_FEE, TAKER_FEE = -0.0001, 0.0003  # AAPL in the shipped config

TRADES_HEADER = (
    "ts,ts_ns,seq,trade_id,symbol,price,qty,aggressor,buy_account,sell_account,"
    "buy_order_id,sell_order_id,buy_fee,sell_fee,liquidation"
)
PERFORMANCE_HEADER = (
    "ts,ts_ns,seq,account,cash,realized_pnl,unrealized_pnl,fees,equity,"
    "initial_margin,maintenance_margin,positions"
)
PUBLIC_TRADE_FIELDS = {"type", "symbol", "trade_id", "price", "qty", "aggressor", "ts", "seq"}
PRIVATE_FIELDS = {"account", "buy_account", "sell_account", "order_id", "client_order_id"}


class Session:
    """A logged-in gateway client whose every message is kept, in arrival order."""

    def __init__(self, client: WsClient, account: str) -> None:
        self.client = client
        self.account = account
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()
        self._requests = 0

    async def read(self) -> None:
        """Keep every message until the connection closes."""
        self.messages.extend(self.client.buffer)
        self.client.buffer.clear()
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.client.ws:
                parsed = json.loads(frame)
                self.messages.extend(parsed if isinstance(parsed, list) else [parsed])
                self._arrived.set()

    async def wait(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """The first message (already received or still to come) that satisfies
        ``predicate``."""
        deadline = asyncio.get_running_loop().time() + seconds(timeout)
        while True:
            self._arrived.clear()
            for message in self.messages:
                if predicate(message):
                    return message
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"{self.account}: nothing matched; got {self.messages[-5:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def request(self, message: Message) -> str:
        """Send ``message`` with a fresh ``req_id``; returns the ``req_id``."""
        self._requests += 1
        req_id = f"{self.account}-{self._requests}"
        await self.client.send({**message, "req_id": req_id})
        return req_id

    async def reply(self, message: Message, kind: str, timeout: float = 5.0) -> Message:
        """Send ``message`` and return the first ``kind`` message echoing its ``req_id``."""
        req_id = await self.request(message)
        return await self.wait(lambda m: m["type"] == kind and m.get("req_id") == req_id, timeout)

    async def order(self, **fields: Any) -> Message:
        """Place an order; returns its ``new`` report (the test expects acceptance)."""
        report = await self.reply(
            {"type": "new_order", "symbol": SYMBOL, **fields}, "execution_report"
        )
        assert report["exec_type"] == "new", report
        return report

    async def report(self, order_id: int, where: Callable[[Message], bool]) -> Message:
        """Wait for a report of ``order_id`` satisfying ``where``."""
        return await self.wait(
            lambda m: m["type"] == "execution_report" and m.get("order_id") == order_id and where(m)
        )

    def reports(self) -> dict[int, list[Message]]:
        """This account's execution reports, by order id, in arrival order."""
        found: dict[int, list[Message]] = {}
        for message in self.messages:
            if message["type"] == "execution_report":
                assert message["account"] == self.account, message
                found.setdefault(message["order_id"], []).append(message)
        return found


@asynccontextmanager
async def session(system: LiveSystem, account: str) -> AsyncIterator[Session]:
    async with gateway_client(system.gateway_port, f"{account}-key") as client:
        assert client.greeting is not None and client.greeting["account"] == account
        me = Session(client, account)
        reading = asyncio.create_task(me.read())
        try:
            yield me
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


def check_order_reports(reports: list[Message]) -> None:
    """PROTOCOL.md §3 for the reports of one order, in the order they arrived."""
    assert reports[0]["exec_type"] == "new", reports
    cum_qty = 0
    for position, report in enumerate(reports):
        assert report["symbol"] == SYMBOL and report["seq"] is not None, report
        if report["status"] in LIVE:
            assert report["qty"] == report["cum_qty"] + report["leaves_qty"], report
        else:
            assert report["status"] in DONE, report
            assert report["leaves_qty"] == 0, report
            assert position == len(reports) - 1, ("a report after the terminal one", reports)
        if report["exec_type"] == "trade":
            assert report["last_qty"] > 0 and report["trade_id"] is not None, report
            assert report["liquidity"] in ("maker", "taker"), report
            cum_qty += report["last_qty"]
        else:
            assert report["exec_type"] in ("new", "replaced", "canceled", "expired"), report
            assert position == 0 or report["exec_type"] != "new", reports
        assert report["cum_qty"] == cum_qty, report
        if cum_qty == 0:
            assert report["avg_px"] == 0, report
    terminal = [r for r in reports if r["exec_type"] in ("canceled", "expired", "rejected")]
    assert len(terminal) <= 1, reports


EXPECTED_TRADES = [
    # trade_id, price, qty, aggressor, buyer, seller
    (1, 190.05, 3, "buy", "carol", "alice"),
    (2, 190.05, 5, "buy", "bob", "alice"),
    (3, 190.10, 2, "buy", "bob", "alice"),
    (4, 189.92, 2, "sell", "bob", "carol"),
    (5, 190.10, 3, "buy", "carol", "alice"),
]
FINAL_BOOK = ([[189.92, 4]], [[190.20, 4]])
FINAL_POSITIONS = {"alice": -13, "bob": 9, "carol": 4}


async def trade_scenario(alice: Session, bob: Session, carol: Session) -> None:
    """Limit orders that rest and cross, a cancel, two amends, market orders."""
    # Resting orders, a cancel, an amend that keeps priority.
    a1 = await alice.order(side="sell", price=190.05, qty=10, client_order_id="a1")
    a2 = await alice.order(side="sell", price=190.10, qty=5)
    b1 = await bob.order(side="buy", price=189.95, qty=4, client_order_id="b1")
    canceled = await bob.reply(
        {"type": "cancel_order", "client_order_id": "b1"}, "execution_report"
    )
    assert (canceled["exec_type"], canceled["status"]) == ("canceled", "canceled")
    assert canceled["order_id"] == b1["order_id"] and canceled["leaves_qty"] == 0
    too_late = await bob.reply(
        {"type": "cancel_order", "order_id": b1["order_id"]}, "cancel_reject"
    )
    assert (too_late["reject_reason"], too_late["status"]) == ("too_late", "canceled")
    smaller = await alice.reply(
        {"type": "amend_order", "order_id": a1["order_id"], "qty": 8}, "execution_report"
    )
    assert (smaller["exec_type"], smaller["qty"], smaller["leaves_qty"]) == ("replaced", 8, 8)

    # A limit order that crosses: carol takes 3 of alice's 8 (a1 is first at 190.05).
    c1 = await carol.order(side="buy", price=190.05, qty=3)
    await carol.report(c1["order_id"], lambda r: r["status"] == "filled")
    await alice.report(a1["order_id"], lambda r: r["cum_qty"] == 3)

    # An amend to a new price (loses priority, moves the level).
    b2 = await bob.order(side="buy", price=189.90, qty=6, client_order_id="b2")
    moved = await bob.reply(
        {"type": "amend_order", "client_order_id": "b2", "price": 189.92}, "execution_report"
    )
    assert (moved["exec_type"], moved["price"], moved["order_id"]) == (
        "replaced",
        189.92,
        b2["order_id"],
    )

    # Market orders: one sweeps two levels, one hits the bid, one runs out of asks.
    b3 = await bob.order(side="buy", order_type="market", qty=7)
    assert b3["price"] is None
    await bob.report(b3["order_id"], lambda r: r["status"] == "filled")
    c2 = await carol.order(side="sell", order_type="market", qty=2)
    await carol.report(c2["order_id"], lambda r: r["status"] == "filled")
    c3 = await carol.order(side="buy", order_type="market", qty=5)
    expired = await carol.report(c3["order_id"], lambda r: r["status"] == "expired")
    assert (expired["reject_reason"], expired["cum_qty"]) == ("no_liquidity", 3)
    await alice.report(a1["order_id"], lambda r: r["status"] == "filled")
    await alice.report(a2["order_id"], lambda r: r["status"] == "filled")
    await bob.report(b2["order_id"], lambda r: r["cum_qty"] == 2)
    await alice.order(side="sell", price=190.20, qty=4)


def reported_trades(sessions: tuple[Session, ...]) -> dict[int, Message]:
    """Every trade the clients were told about, both sides merged, by trade id; checks the
    reports of every order on the way."""
    trades: dict[int, Message] = {}
    for me in sessions:
        for order_id, reports in me.reports().items():
            check_order_reports(reports)
            for report in reports:
                if report["exec_type"] != "trade":
                    continue
                rate = MAKER_FEE if report["liquidity"] == "maker" else TAKER_FEE
                notional = report["last_px"] * report["last_qty"]
                assert report["fee"] == pytest.approx(rate * notional), report
                side = report["side"]
                trade = trades.setdefault(report["trade_id"], {})
                for key, value in (("price", report["last_px"]), ("qty", report["last_qty"])):
                    assert trade.setdefault(key, value) == value, (trade, report)
                trade[f"{side}_account"] = me.account
                trade[f"{side}_order_id"] = order_id
                trade[f"{side}_fee"] = report["fee"]
                trade[f"{side}_ts"] = report["ts"]
                if report["liquidity"] == "taker":
                    trade["aggressor"] = side
    return trades


async def test_trading_through_the_whole_system(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        await system.start("exporter", exporter_argv(system))
        feed = await FeedClient.open(f"ws://127.0.0.1:{system.marketdata_port}", depth=10)
        subscribed = await feed.subscribe(f"book.{SYMBOL}", f"trades.{SYMBOL}", f"bbo.{SYMBOL}")
        assert subscribed["type"] == "subscribed", subscribed
        assert (feed.snapshots[0]["bids"], feed.snapshots[0]["asks"]) == ([], [])

        async with (
            session(system, "alice") as alice,
            session(system, "bob") as bob,
            session(system, "carol") as carol,
        ):
            await trade_scenario(alice, bob, carol)
            sessions = (alice, bob, carol)
            for me in sessions:  # a barrier: everything queued for the session has arrived
                await me.reply({"type": "ping"}, "pong")
            accounts = {
                me.account: await me.reply({"type": "get_account"}, "account") for me in sessions
            }

        # Execution reports: per order, and the trades they add up to.
        for me in sessions:
            seqs = [m["seq"] for m in me.messages if m.get("seq") is not None]
            assert seqs == sorted(seqs), f"{me.account}: reports out of seq order"
        trades = reported_trades(sessions)
        assert sorted(trades) == [t[0] for t in EXPECTED_TRADES]
        for trade_id, price, qty, aggressor, buyer, seller in EXPECTED_TRADES:
            trade = trades[trade_id]
            assert (trade["price"], trade["qty"], trade["aggressor"]) == (price, qty, aggressor)
            assert (trade["buy_account"], trade["sell_account"]) == (buyer, seller)
            assert trade["buy_ts"] == trade["sell_ts"], trade

        # The relay's feed rebuilds the engine's book; public trades name no accounts.
        seq, bids, asks = await engine_book(system, SYMBOL)
        assert (bids, asks) == FINAL_BOOK
        relay_book = await relay_book_equals(system, SYMBOL, bids, asks)
        assert relay_book["type"] == "book_snapshot"
        await feed.sync({SYMBOL: relay_book["seq"]}, timeout=10)
        assert feed.books[SYMBOL].ladder() == FINAL_BOOK
        book_messages = [m for m in feed.seen if m["type"] in ("book_snapshot", "book_update")]
        assert book_messages[0]["type"] == "book_snapshot" and len(feed.snapshots) == 1
        assert feed.books[SYMBOL].updates == len(book_messages) - 1 > 0
        assert [t["trade_id"] for t in feed.trades] == sorted(trades)
        for public in feed.trades:
            trade = trades[public["trade_id"]]
            assert set(public) == PUBLIC_TRADE_FIELDS, public
            assert (public["price"], public["qty"], public["aggressor"]) == (
                trade["price"],
                trade["qty"],
                trade["aggressor"],
            )
            assert public["ts"] == trade["buy_ts"]
        for message in feed.seen:
            assert not PRIVATE_FIELDS & set(message), message
        bbo = feed.bbos[SYMBOL]
        assert (bbo["bid"], bbo["bid_qty"], bbo["ask"], bbo["ask_qty"]) == (189.92, 4, 190.2, 4)
        status, body = await http_get(system.marketdata_port, f"/api/v1/trades/{SYMBOL}")
        assert status == 200 and json.loads(body)["trades"] == feed.trades
        await feed.close()

        # The CSV files.
        out = tmp_path / "out"
        await wait_exported(out, seq, timeout=10)
        trades_text = (out / "trades.csv").read_text()
        assert trades_text.splitlines()[0] == TRADES_HEADER
        rows = read_csv(out / "trades.csv")
        assert [int(row["trade_id"]) for row in rows] == sorted(trades)
        public_seqs = {t["trade_id"]: t["seq"] for t in feed.trades}
        for row in rows:
            trade = trades[int(row["trade_id"])]
            assert row["symbol"] == SYMBOL and row["liquidation"] == "false", row
            assert int(row["seq"]) == public_seqs[int(row["trade_id"])], row
            assert row["ts"] == iso_ts(int(row["ts_ns"])) and row["ts"].endswith("Z"), row
            assert int(row["ts_ns"]) == trade["buy_ts"], row
            assert (float(row["price"]), int(row["qty"]), row["aggressor"]) == (
                trade["price"],
                trade["qty"],
                trade["aggressor"],
            )
            for side in ("buy", "sell"):
                assert row[f"{side}_account"] == trade[f"{side}_account"], row
                assert int(row[f"{side}_order_id"]) == trade[f"{side}_order_id"], row
                assert float(row[f"{side}_fee"]) == trade[f"{side}_fee"], row
        assert (out / "performance.csv").read_text().splitlines()[0] == PERFORMANCE_HEADER
        performance = read_csv(out / "performance.csv")
        seqs = [int(row["seq"]) for row in performance]
        assert seqs == sorted(seqs)
        for account, position in FINAL_POSITIONS.items():
            mine = [row for row in performance if row["account"] == account]
            assert mine, f"no performance.csv row for {account}"
            last = mine[-1]
            assert last["positions"].startswith(f"{SYMBOL}:{position}@"), last
            assert float(last["cash"]) == accounts[account]["cash"], (last, accounts[account])
            assert float(last["fees"]) == accounts[account]["fees"], (last, accounts[account])
            assert float(last["fees"]) == pytest.approx(
                sum(
                    t[f"{s}_fee"]
                    for t in trades.values()
                    for s in ("buy", "sell")
                    if t[f"{s}_account"] == account
                )
            )

        # SIGTERM to everything at once (as honcho does): each exits 0 within 5 s.
        await stop_all(system)
        assert read_csv(out / "trades.csv") == rows, "the exporter's final flush changed rows"

    replay = subprocess.run(
        [sys.executable, "-m", "exchange.replay", "--data-dir", str(tmp_path / "data")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds(60),
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr


async def stop_all(system: LiveSystem) -> None:
    """SIGTERM every process at once; each must exit 0 within 5 s of it."""
    children = dict(system.processes)
    for child in children.values():
        child.send_signal(signal.SIGTERM)
    started = time.monotonic()
    codes = {}
    for name, child in children.items():
        codes[name] = await asyncio.wait_for(
            child.wait(), seconds(5) - (time.monotonic() - started)
        )
    assert codes == dict.fromkeys(children, 0), {n: system.stderr(n) for n, c in codes.items() if c}
