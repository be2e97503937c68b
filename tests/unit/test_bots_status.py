"""Trading status in the bots (PROTOCOL §3.2): ``ctx.status()``, the ``on_status`` hook, the
driver's guard against orders the exchange would refuse, and the built-ins under a halt or an
auction."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bots.api import (
    AuctionInfo,
    Context,
    Intents,
    LimitOrder,
    MarketOrder,
    MarketStatus,
    News,
    Strategy,
    as_intents,
)
from bots.strategies.gambler import Gambler, GamblerConfig
from bots.strategies.maker import Maker
from bots.strategies.market_maker import MarketMaker
from bots.strategies.news_trader import NewsTrader, NewsTraderConfig
from bots.strategies.random_trader import RandomConfig, RandomTrader
from bots.strategies.taker import Taker, TakerConfig
from exchange.protocol.messages import Instruments
from tests.unit.test_bots_driver import INFO, Recorder, connect, make_driver


def status(symbol: str, value: Any, seq: int, until: int | None = None) -> MarketStatus:
    return MarketStatus(symbol, value, "admin", until, seq * 10, seq)


class Watcher(Recorder):
    """Records ``on_status`` and sends what it is told to in ``next_order``."""

    def __init__(self) -> None:
        super().__init__()
        self.send: list[Any] = []

    def on_status(self, ctx: Context, status: MarketStatus) -> Intents:
        self.calls.append(f"on_status:{status.symbol}:{status.status}:{ctx.status()}")
        return None

    def next_order(self, ctx: Context) -> Intents:
        self.calls.append("next_order")
        send, self.send = self.send, []
        return send


def test_status_comes_from_instruments_then_the_newest_market_status() -> None:
    driver = make_driver(Watcher())
    ctx = driver.context
    assert ctx.status() == "open"  # nothing known yet
    halted = msgspec.structs.replace(INFO, status="halted")
    driver.market_data(Instruments(instruments=[halted]), 0.0)
    assert ctx.status() == "halted" and ctx.status("X") == "halted"
    driver.gateway(status("X", "auction", 7), 0.0)
    assert ctx.status() == "auction"
    # The same event again from the relay, and an older one: nothing changes.
    driver.market_data(status("X", "auction", 7), 0.0)
    driver.market_data(status("X", "halted", 5), 0.0)
    assert ctx.status() == "auction" and driver.stats["status_changes"] == 1
    info = AuctionInfo("X", 100.5, 20, -3, None, 80, 8)
    driver.market_data(info, 0.0)
    assert ctx.auction() == info
    driver.market_data(status("X", "open", 9), 0.0)
    assert ctx.status() == "open" and ctx.auction() is None


def test_on_status_runs_on_a_change_then_next_order() -> None:
    driver = make_driver(Watcher())
    strategy = driver.strategy
    assert isinstance(strategy, Watcher)
    driver.gateway(status("X", "halted", 1), 0.0)  # before the start: recorded, no hook
    assert strategy.calls == [] and driver.context.status() == "halted"
    connect(driver)
    strategy.calls.clear()
    driver.gateway(status("X", "halted", 2, until=99), 0.0)  # no change: no hook
    assert strategy.calls == []
    driver.gateway(status("Y", "auction", 3), 0.0)  # another symbol: the hook runs too
    driver.market_data(status("X", "open", 4), 0.0)
    assert strategy.calls == [
        "on_status:Y:auction:halted",
        "next_order",
        "on_status:X:open:open",
        "next_order",
    ]


def test_the_driver_drops_new_orders_the_status_would_have_rejected() -> None:
    driver = make_driver(Watcher())
    strategy = driver.strategy
    assert isinstance(strategy, Watcher)
    connect(driver)
    driver.take_requests(0.0)
    driver.gateway(status("X", "halted", 1), 0.0)
    strategy.send = [LimitOrder("buy", 99.0, 1)]
    driver.timer(0.0)
    assert not driver.outbox and driver.stats["dropped_market_halted"] == 1
    assert driver.context.orders == {}
    driver.gateway(status("X", "auction", 2), 0.0)
    strategy.send = [
        LimitOrder("buy", 99.0, 1, tif="ioc"),
        MarketOrder("sell", 1),
        LimitOrder("buy", 98.0, 2),
    ]
    driver.timer(0.0)
    assert [(r.price, r.tif) for r in driver.outbox] == [(98.0, "gtc")]  # type: ignore[union-attr]
    assert driver.stats["dropped_market_halted"] == 3


def quoting_context(value: str) -> Context:
    ctx = Context.for_test(bids=[(99.9, 500)], asks=[(100.1, 500)])
    ctx.statuses[ctx.symbol] = status(ctx.symbol, value, 1)
    return ctx


@pytest.mark.parametrize("strategy", [Maker, MarketMaker])
def test_quoting_strategies_wait_while_halted_and_quote_in_an_auction(strategy: Any) -> None:
    assert strategy().next_order(quoting_context("halted")) is None
    quotes = as_intents(strategy().next_order(quoting_context("auction")))
    assert quotes and all(isinstance(q, LimitOrder) and q.tif == "gtc" for q in quotes)
    assert as_intents(strategy().next_order(quoting_context("open"))) == quotes


@pytest.mark.parametrize("value", ["halted", "auction"])
def test_ioc_strategies_send_nothing_unless_open(value: str) -> None:
    strategies: list[Strategy[Any]] = [
        Taker(TakerConfig(noise_probability=1.0)),
        Gambler(GamblerConfig(lookback_s=0.0, entry_bps=0.0)),
        RandomTrader(RandomConfig(activity=1.0, market_probability=1.0)),
    ]
    for strategy in strategies:
        for step in range(3):
            ctx = quoting_context(value)
            ctx.now_ns = step * 10**9
            intents = as_intents(strategy.on_timer(ctx))
            assert not any(getattr(i, "tif", None) == "ioc" for i in intents), strategy
            if value == "halted":
                assert intents == [], strategy


def test_news_trader_waits_for_the_open_to_trade_news_from_a_halt() -> None:
    trader = NewsTrader(NewsTraderConfig(order_notional=10_000.0))
    halted = quoting_context("halted")
    item = News(
        news_id=1, headline="beat", body=None, symbols=["TEST"], sentiment=0.5, shock=None,
        ts=1, seq=1,
    )  # fmt: skip
    assert trader.on_news(halted, item) is None
    auction = quoting_context("auction")
    assert trader.on_status(auction, status("TEST", "auction", 2)) is None
    opened = quoting_context("open")
    (buy,) = as_intents(trader.on_status(opened, status("TEST", "open", 3)))
    assert isinstance(buy, LimitOrder) and (buy.side, buy.tif, buy.qty) == ("buy", "ioc", 50)
    assert trader.on_status(opened, status("TEST", "open", 4)) is None  # traded once
