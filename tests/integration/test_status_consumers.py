"""Trading status (PROTOCOL §3.2) from the real engine to its consumers: the relay's
``status`` channel and ``instruments`` follow an operator's halt, auction and the engine's
reopen, uncross trades reach ``trades.S`` with aggressor ``auction``, a relay started later
learns the status from the engine's snapshot, and a scenario ``status`` entry halts a symbol
until ``until_s`` and reopens it through its auction."""

from __future__ import annotations

import time
from pathlib import Path

from exchange.engine import EngineApp
from exchange.protocol.scenario import load as load_scenario
from tests.integration.clients import event_client, gateway_client, running_relay
from tests.integration.feed_client import FeedClient
from tests.integration.test_operators import CONFIG, venue


async def test_the_relay_follows_a_halt_an_auction_and_the_reopen() -> None:
    async with (
        venue() as (engine, gateway, relay),
        gateway_client(gateway.port, "admin-key") as admin,
        gateway_client(gateway.port, "alice-key") as alice,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        feed = await FeedClient.open(f"ws://127.0.0.1:{relay.port}")
        try:
            await feed.subscribe("status", "instruments", "trades.AAPL")
            first = await feed.until(lambda m: m["type"] == "market_status")
            assert (first["status"], first["reason"]) == ("open", "admin")
            until = time.time_ns() + 60 * 10**9
            await admin.send(
                {"type": "set_status", "symbol": "AAPL", "status": "halted", "until": until,
                 "req_id": 9}
            )  # fmt: skip
            await admin.expect("market_status", req_id=9)
            # The instruments list with the new status first (as after a news shock).
            listed = await feed.until(
                lambda m: (
                    m["type"] == "instruments"
                    and any(i["status"] == "halted" for i in m["instruments"])
                )
            )
            assert {i["symbol"]: i["status"] for i in listed["instruments"]}["AAPL"] == "halted"
            halted = await feed.until(
                lambda m: m["type"] == "market_status" and m["status"] == "halted"
            )
            assert (halted["symbol"], halted["until"], halted["req_id"]) == ("AAPL", until, None)
            # A relay started now learns the halt, its reason and its end from the engine's
            # snapshot.
            async with running_relay(engine, CONFIG) as late:
                other = await FeedClient.open(f"ws://127.0.0.1:{late.port}")
                await other.subscribe("status")
                learned = await other.until(
                    lambda m: m["type"] == "market_status" and m["symbol"] == "AAPL"
                )
                assert (learned["status"], learned["reason"], learned["until"]) == (
                    "halted",
                    "admin",
                    until,
                )
                await other.close()
            await admin.send({"type": "set_status", "symbol": "AAPL", "status": "auction"})
            await feed.until(lambda m: m["type"] == "market_status" and m["status"] == "auction")
            await alice.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 3, "price": 191.0}
            )
            await alice.expect("execution_report", exec_type="new")
            await bob.send(
                {"type": "new_order", "symbol": "AAPL", "side": "sell", "qty": 2, "price": 189.0}
            )
            await bob.expect("execution_report", exec_type="new")
            indicative = await feed.until(
                lambda m: m["type"] == "auction" and m["indicative_qty"] == 2
            )
            assert indicative["symbol"] == "AAPL" and indicative["imbalance"] == 1
            await admin.send({"type": "set_status", "symbol": "AAPL", "status": "open"})
            trade = await feed.until(lambda m: m["type"] == "trade")
            assert (trade["aggressor"], trade["qty"]) == ("auction", 2)
            opened = await feed.until(
                lambda m: m["type"] == "market_status" and m["status"] == "open"
            )
            assert opened["seq"] > trade["seq"]
            assert relay.feed.auctions == {} and relay.feed.instruments[0].status == "open"
        finally:
            await feed.close()


async def test_a_scenario_status_entry_halts_then_reopens_through_an_auction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        "[[scenario]]\nat_s = 0\n"
        'status = { symbol = "AAPL", status = "halted", until_s = 0.3, auction_s = 0.2 }\n'
    )
    engine = EngineApp(CONFIG, data_dir=tmp_path / "data", scenario=load_scenario(path))
    before = time.time_ns()
    await engine.start()
    try:
        async with event_client(engine.event_port, since=0) as events:
            halted = await events.expect("market_status", symbol="AAPL", status="halted")
            assert before + 3 * 10**8 <= halted["until"] <= time.time_ns() + 3 * 10**8
            auction = await events.expect("market_status", status="auction", timeout=5)
            opened = await events.expect("market_status", status="open", timeout=5)
            assert auction["ts"] >= halted["until"] and opened["ts"] > auction["ts"]
    finally:
        await engine.stop()
