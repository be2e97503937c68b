"""The sans-I/O bot driver: when hooks run, rate limiting, errors, shutdown."""

from __future__ import annotations

from typing import Any

import msgspec

from bots.api import Book, Context, Intents, LimitOrder, Strategy
from bots.driver import BotDriver
from exchange.protocol.messages import (
    Account,
    BookSnapshot,
    BookUpdate,
    CancelAll,
    Error,
    ExecutionReport,
    GetAccount,
    GetOrders,
    Heartbeat,
    InstrumentInfo,
    Instruments,
    Limits,
    NewOrder,
    News,
    Orders,
    RoundStarted,
    Trade,
)
from exchange.protocol.ratelimit import TokenBucket

LIMITS = Limits(orders_per_second=10.0, burst=10, max_open_orders=3)
INFO = InstrumentInfo(
    symbol="X", tick_size=0.01, lot_size=1.0, reference_price=100.0, initial_margin=0.1,
    maintenance_margin=0.05, max_order_qty=100, max_position=1000, price_band=0.1,
    maker_fee=0.0, taker_fee=0.0,
)  # fmt: skip
ACCOUNT = Account(
    account="me", cash=1e5, equity=1e5, realized_pnl=0.0, unrealized_pnl=0.0, fees=0.0,
    initial_margin=0.0, maintenance_margin=0.0, available=1e5, positions=[],
)  # fmt: skip


class Recorder(Strategy):
    """Records hook calls; ``next_order`` places one bid per call while asked to."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.bids = 0

    def on_start(self, ctx: Context) -> Intents:
        self.calls.append("on_start")
        return None

    def on_book(self, ctx: Context, book: Book) -> Intents:
        self.calls.append("on_book")
        return None

    def on_trade(self, ctx: Context, trade: Trade) -> Intents:
        self.calls.append("on_trade")
        return None

    def on_execution(self, ctx: Context, report: ExecutionReport) -> Intents:
        self.calls.append(f"on_execution:{report.exec_type}")
        return None

    def next_order(self, ctx: Context) -> Intents:
        self.calls.append("next_order")
        if self.bids:
            self.bids -= 1
            return LimitOrder("buy", 99.0, 1)
        return None


def make_driver(strategy: Strategy[Any] | None = None, **kw: Any) -> BotDriver:
    ctx = Context(account="me", symbols=["X"])
    return BotDriver(strategy or Recorder(), ctx, client_order_prefix="t-", **kw)


def connect(driver: BotDriver, now: float = 0.0) -> None:
    assert driver.login(LIMITS, now) == [GetAccount(), GetOrders()]
    driver.gateway(ACCOUNT, now)
    driver.gateway(Orders(orders=[]), now)
    driver.market_data(Instruments(instruments=[INFO]), now)
    snapshot = BookSnapshot(symbol="X", seq=5, ts=1, bids=[(99.0, 1)], asks=[(101.0, 1)])
    driver.market_data(snapshot, now)


def test_on_start_waits_for_login_account_instruments_and_books() -> None:
    driver = make_driver()
    strategy = driver.strategy
    assert isinstance(strategy, Recorder)
    snapshot = BookSnapshot(symbol="X", seq=5, ts=1, bids=[], asks=[])
    driver.market_data(snapshot, 0.0)
    driver.market_data(Instruments(instruments=[INFO]), 0.0)
    assert strategy.calls == []
    driver.login(LIMITS, 0.0)
    driver.gateway(ACCOUNT, 0.0)
    assert strategy.calls == ["on_start", "next_order"]
    driver.market_data(BookUpdate(symbol="X", seq=6, prev_seq=5, ts=2, bids=[], asks=[]), 0.0)
    assert strategy.calls[-2:] == ["on_book", "next_order"]


def test_hooks_pause_while_the_book_is_stale_and_resubscribe_is_requested() -> None:
    driver = make_driver()
    connect(driver)
    strategy = driver.strategy
    assert isinstance(strategy, Recorder)
    before = len(strategy.calls)
    gap = BookUpdate(symbol="X", seq=9, prev_seq=8, ts=2, bids=[], asks=[])
    assert driver.market_data(gap, 0.0) == ["X"]
    trade = Trade(symbol="X", trade_id=1, price=100.0, qty=1, aggressor="buy", ts=3, seq=10)
    driver.market_data(trade, 0.0)
    assert len(strategy.calls) == before
    assert driver.stats["resubscribes"] == 1


def test_heartbeats_ahead_of_a_depth_limited_book_are_not_gaps() -> None:
    driver = make_driver()
    connect(driver)
    for i in range(3):
        assert driver.market_data(Heartbeat(ts=i, seqs={"X": 50 + i}), 0.0) == []
    assert driver.active


def test_requests_leave_at_the_rate_limit_and_next_order_waits_for_the_outbox() -> None:
    strategy = Recorder()
    strategy.bids = 3
    driver = make_driver(strategy, max_rate=1.0)
    connect(driver)
    # burst of 1 at 1/s: the first bid goes at once; no new decision while one waits
    assert [type(r) for r in driver.take_requests(0.0)] == [NewOrder]
    assert driver.take_requests(0.0) == []
    assert driver.send_delay(0.0) is None  # outbox empty after the first
    driver.timer(0.1)
    assert len(driver.outbox) == 1
    assert driver.take_requests(0.2) == []
    assert 0.7 < (driver.send_delay(0.2) or 0) <= 0.8
    assert len(driver.take_requests(1.0)) == 1


def test_rate_limited_reject_pauses_sending() -> None:
    driver = make_driver()
    connect(driver)
    driver.gateway(Error(code="rate_limited", text="slow down", retry_after_ms=500), 0.0)
    assert driver.bucket is not None and not driver.bucket.try_take(0.4)
    assert driver.bucket.try_take(0.7)


def test_new_orders_beyond_max_open_orders_are_dropped_locally() -> None:
    strategy = Recorder()
    strategy.bids = 10
    driver = make_driver(strategy)
    connect(driver)
    for _ in range(10):
        driver.take_requests(100.0)
        driver.timer(100.0)
    assert len(driver.context.orders) == LIMITS.max_open_orders
    assert driver.stats["dropped_max_open_orders"] > 0


def test_strategy_exceptions_are_reported_not_raised() -> None:
    errors: list[tuple[str, BaseException]] = []

    class Broken(Strategy):
        def next_order(self, ctx: Context) -> Intents:
            raise ZeroDivisionError("oops")

    driver = make_driver(Broken(), on_error=lambda hook, exc: errors.append((hook, exc)))
    connect(driver)
    assert errors and errors[0][0] == "next_order"
    assert driver.stats["strategy_errors"] == len(errors)


def test_stop_runs_on_stop_then_cancels_all_per_symbol() -> None:
    class Stopper(Strategy):
        def on_stop(self, ctx: Context) -> Intents:
            return LimitOrder("sell", 101.0, 1, tif="ioc")

    driver = make_driver(Stopper())
    connect(driver)
    requests = driver.stop_requests()
    assert isinstance(requests[0], NewOrder)
    assert requests[-1] == CancelAll(symbol="X", req_id="stop-X")
    driver.timer(5.0)
    assert driver.outbox == type(driver.outbox)()


def test_gateway_loss_stops_decisions_until_the_next_login() -> None:
    strategy = Recorder()
    driver = make_driver(strategy)
    connect(driver)
    driver.gateway_lost()
    assert not driver.active
    calls = len(strategy.calls)
    driver.timer(1.0)
    assert len(strategy.calls) == calls


def test_token_bucket_refills_and_pauses() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    assert bucket.try_take(0.0) and bucket.try_take(0.0) and not bucket.try_take(0.0)
    assert bucket.wait_time(0.0) == 0.5
    assert bucket.try_take(0.5)
    bucket.pause(1.0, 1.0)
    assert not bucket.try_take(1.9)
    assert bucket.wait_time(1.9) > 0.1
    assert bucket.try_take(2.5)


class Listener(Recorder):
    def on_news(self, ctx: Context, news: News) -> Intents:
        self.calls.append(f"on_news:{news.headline}")
        return None

    def on_round(self, ctx: Context, started: RoundStarted) -> Intents:
        self.calls.append(f"on_round:{started.round}:{ctx.round}")
        return None


def test_news_and_rounds_reach_the_strategy_and_the_context() -> None:
    driver = make_driver(Listener())
    strategy = driver.strategy
    assert isinstance(strategy, Listener)
    early = News(
        news_id=1, headline="early", body=None, symbols=["X"], sentiment=0.5, shock=None,
        ts=1, seq=1,
    )  # fmt: skip
    driver.gateway(early, 0.0)  # before the start: kept, no hook
    assert strategy.calls == [] and driver.context.news == [early]
    connect(driver)
    later = msgspec.structs.replace(early, news_id=2, headline="later")
    driver.gateway(later, 0.0)
    assert strategy.calls[-2:] == ["on_news:later", "next_order"]
    driver.gateway(RoundStarted(round=3, name="r", cash=1e5, ts=2, seq=9), 0.0)
    assert strategy.calls[-2:] == ["on_round:3:3", "next_order"]
    assert [n.news_id for n in driver.context.news] == [1, 2]
