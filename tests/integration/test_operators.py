"""Operator sessions (PROTOCOL §3.3) through the real gateway, engine and relay: an admin key
logs in without an account, publishes news and starts rounds; everyone else gets
``forbidden``; news and rounds reach every session and the relay's channels, and the
leaderboard follows the round."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from exchange.engine import EngineApp
from exchange.protocol.scenario import load as load_scenario
from gateway.server import GatewayApp
from marketdata.server import MarketDataRelay
from tests.integration.clients import (
    config_with,
    engine_url,
    event_client,
    gateway_client,
    running_engine,
    running_gateway,
    running_relay,
)
from tests.integration.feed_client import FeedClient
from tests.support import REPO_ROOT, seconds

CONFIG = config_with(engine={"leaderboard_interval_ms": 50}, marketdata={"heartbeat_ms": 100})


@asynccontextmanager
async def venue(
    data_dir: Path | None = None,
) -> AsyncIterator[tuple[EngineApp, GatewayApp, MarketDataRelay]]:
    kwargs = {"data_dir": data_dir} if data_dir is not None else {}
    async with (
        running_engine(CONFIG, **kwargs) as engine,
        running_gateway(engine_url(engine), CONFIG) as gateway,
        running_relay(engine, CONFIG) as relay,
    ):
        yield engine, gateway, relay


async def test_an_operator_has_no_account_and_cannot_trade() -> None:
    async with venue() as (_, gateway, _relay), gateway_client(gateway.port) as admin:
        await admin.send({"type": "login", "api_key": "admin-key", "req_id": 1})
        greeting = await admin.expect("logged_in")
        assert (greeting["account"], greeting["admin"], greeting["limits"]) == (None, True, None)
        for request in (
            {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 1, "price": 190.0},
            {"type": "get_account"},
        ):
            await admin.send({**request, "req_id": "x"})
            refused = await admin.expect("error", req_id="x")
            assert refused["code"] == "forbidden"


async def test_only_operators_publish_news_and_everyone_hears_it() -> None:
    async with (
        venue() as (_, gateway, relay),
        gateway_client(gateway.port, "admin-key") as admin,
        gateway_client(gateway.port, "alice-key") as alice,
    ):
        feed = await FeedClient.open(f"ws://127.0.0.1:{relay.port}")
        try:
            await feed.subscribe("news", "instruments")
            initial = await feed.read()  # the list as it is when subscribing
            assert initial["type"] == "instruments"
            assert initial["instruments"][0]["reference_price"] == 190.0
            await alice.send({"type": "publish_news", "headline": "mine", "req_id": 5})
            refused = await alice.expect("error", req_id=5)
            assert refused["code"] == "forbidden"
            await admin.send(
                {
                    "type": "publish_news",
                    "headline": "AAPL beats",
                    "symbols": ["AAPL"],
                    "sentiment": 0.9,
                    "shock": 0.05,
                    "req_id": "n1",
                }
            )
            own = await admin.expect("news")
            assert own["req_id"] == "n1" and own["reference_prices"] == {"AAPL": 199.5}
            heard = await alice.expect("news")
            assert heard["headline"] == "AAPL beats" and heard["req_id"] is None
            # The shocked reference price first (instruments), then the news itself.
            instruments = await feed.read()
            assert instruments["type"] == "instruments"
            assert instruments["instruments"][0]["reference_price"] == 199.5
            public = await feed.read()
            assert public["type"] == "news"
            assert (public["news_id"], public["sentiment"], public["shock"]) == (1, 0.9, 0.05)
        finally:
            await feed.close()


async def test_a_round_resets_accounts_and_the_leaderboard_follows(tmp_path: Path) -> None:
    async with (
        venue(tmp_path / "data") as (engine, gateway, relay),
        gateway_client(gateway.port, "admin-key") as admin,
        gateway_client(gateway.port, "alice-key") as alice,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        feed = await FeedClient.open(f"ws://127.0.0.1:{relay.port}")
        try:
            await feed.subscribe("rounds")
            await alice.send(
                {"type": "new_order", "symbol": "AAPL", "side": "sell", "qty": 10, "price": 190.0}
            )
            await alice.expect("execution_report", exec_type="new")
            await bob.send(
                {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 4, "price": 190.0}
            )
            await bob.expect("execution_report", exec_type="trade")
            await admin.send({"type": "start_round", "name": "heat 1", "cash": 50000})
            started = await admin.expect("round_started")
            assert (started["round"], started["name"], started["cash"]) == (1, "heat 1", 50000.0)
            canceled = await alice.expect("execution_report", exec_type="canceled")
            assert canceled["text"] == "round" and canceled["leaves_qty"] == 0
            await alice.expect("round_started", round=1)
            reset = await bob.expect("account_update", where=lambda m: m["cash"] == 50000.0)
            assert reset["positions"] == [] and reset["equity"] == 50000.0
            board = await feed.until(lambda m: m["type"] == "leaderboard" and m["round"] == 1)
            rows = {row["account"]: row for row in board["rows"]}
            assert rows["alice"]["pnl"] == 0.0 and rows["alice"]["trades"] == 0
            assert "insurance_fund" not in rows
            assert [r["equity"] for r in board["rows"]] == sorted(
                (r["equity"] for r in board["rows"]), reverse=True
            )
            again = await feed.until(lambda m: m["type"] == "leaderboard")  # every second
            assert again["round"] == 1
        finally:
            await feed.close()
        assert engine.core.round == 1


async def test_the_engine_plays_a_scenario_on_its_clock(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        '[[scenario]]\nat_s = 0\nnews = { headline = "open", symbols = ["AAPL"] }\n'
        "shock = 0.1\n"
        '[[scenario]]\nat_s = 0.2\nstart_round = { name = "scripted", cash = 1000 }\n'
        '[[scenario]]\nat_s = 0.3\nstatus = { symbol = "MSFT", status = "halted" }\n'
    )
    engine = EngineApp(CONFIG, data_dir=tmp_path / "data", scenario=load_scenario(path))
    await engine.start()
    try:
        async with event_client(engine.event_port, since=0) as events:
            news = await events.expect("news")
            assert news["headline"] == "open" and news["reference_prices"] == {"AAPL": 209.0}
            started = await events.expect("round_started")
            assert (started["name"], started["cash"]) == ("scripted", 1000.0)
            assert started["seq"] > news["seq"]
            halted = await events.expect("market_status")
            assert (halted["symbol"], halted["status"], halted["reason"]) == (
                "MSFT",
                "halted",
                "schedule",
            )
        assert engine.scenario is not None and engine.scenario.next_due() is None
    finally:
        await engine.stop()


def test_a_bad_scenario_stops_the_engine_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[scenario]]\nat_s = 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "exchange", "--scenario", str(path), "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds(30),
    )
    assert done.returncode == 2
    assert "bad.toml, entry 1: needs exactly one of news, status, start_round" in done.stderr


async def test_an_operator_halts_and_auctions_a_symbol_and_the_engine_reopens_it() -> None:
    async with (
        venue() as (_, gateway, _relay),
        gateway_client(gateway.port, "admin-key") as admin,
        gateway_client(gateway.port, "alice-key") as alice,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        await alice.send({"type": "set_status", "symbol": "AAPL", "status": "halted", "req_id": 1})
        refused = await alice.expect("error", req_id=1)
        assert refused["code"] == "forbidden"
        await admin.send({"type": "set_status", "symbol": "AAPL", "status": "halted", "req_id": 2})
        own = await admin.expect("market_status")
        assert (own["status"], own["reason"], own["req_id"]) == ("halted", "admin", 2)
        heard = await alice.expect("market_status")
        assert heard["symbol"] == "AAPL" and heard["req_id"] is None
        await alice.send(
            {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 1, "price": 190.0}
        )
        rejected = await alice.expect("execution_report")
        assert rejected["reject_reason"] == "market_halted"
        await admin.send(
            {"type": "set_status", "symbol": "AAPL", "status": "auction", "auction_s": 0.3}
        )
        await alice.expect("market_status", status="auction")
        await alice.send(
            {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 2, "price": 191.0}
        )
        await alice.expect("execution_report", exec_type="new")
        await bob.send(
            {"type": "new_order", "symbol": "AAPL", "side": "sell", "qty": 2, "price": 189.0}
        )
        await bob.expect("execution_report", exec_type="new")
        # The engine's clock ends the auction: the book uncrosses, then opens.
        trade = await bob.expect("execution_report", exec_type="trade", timeout=5)
        # 189 and 191 trade 2 each with no imbalance, both 1.00 from the reference 190: lower
        assert (trade["last_px"], trade["last_qty"], trade["liquidity"]) == (189.0, 2, "maker")
        opened = await bob.expect("market_status", status="open")
        assert opened["reason"] == "schedule"
