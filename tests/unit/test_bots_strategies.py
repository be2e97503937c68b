"""Built-in strategies against hand-made contexts, and together in a simulated market."""

from __future__ import annotations

import msgspec
import pytest

from bots.api import AccountUpdate, Context, ExecutionReport, LimitOrder, Order, as_intents
from bots.strategies._quoting import Anchor, affordable, ladder
from bots.strategies.gambler import Gambler, GamblerConfig
from bots.strategies.maker import Maker, MakerConfig
from bots.strategies.market_maker import MarketMaker
from bots.strategies.random_trader import RandomConfig, RandomTrader
from bots.strategies.taker import Taker, TakerConfig
from exchange.protocol.config import load_config
from tests.botsim import procfile_market


def on_tick(price: float, tick: float = 0.01) -> bool:
    return abs(round(price / tick) * tick - price) < 1e-9


def as_orders(intents: list[LimitOrder]) -> list[Order]:
    return [_resting(i, o) for i, o in enumerate(intents)]


def _resting(i: int, o: LimitOrder) -> Order:
    return Order(
        client_order_id=f"c{i}", order_id=i, symbol="TEST", side=o.side,
        order_type="limit", price=o.price, qty=o.qty, leaves_qty=o.qty, status="new",
    )  # fmt: skip


def test_maker_quotes_both_sides_post_only_around_the_mid() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)])
    intents = as_intents(Maker().next_order(ctx))
    bids = [i for i in intents if isinstance(i, LimitOrder) and i.side == "buy"]
    asks = [i for i in intents if isinstance(i, LimitOrder) and i.side == "sell"]
    assert len(bids) == len(asks) == MakerConfig().levels
    assert all(i.post_only and on_tick(i.price) for i in bids + asks)
    assert max(b.price for b in bids) < 100.0 < min(a.price for a in asks)
    assert max(b.price for b in bids) < 100.1 and min(a.price for a in asks) > 99.9
    assert [b.price for b in bids] == sorted((b.price for b in bids), reverse=True)


def test_maker_leaves_good_quotes_alone() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)])
    maker = Maker()
    first = [i for i in as_intents(maker.next_order(ctx)) if isinstance(i, LimitOrder)]
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], orders=as_orders(first))
    assert as_intents(maker.next_order(ctx)) == []


def test_maker_stops_buying_at_its_position_limit_and_skews_down() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], position=5_000)
    intents = as_intents(Maker(MakerConfig(max_position_notional=100_000)).next_order(ctx))
    sides = {i.side for i in intents if isinstance(i, LimitOrder)}
    assert sides == {"sell"}


def test_taker_crosses_when_the_market_is_away_from_its_fair_value() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)])
    taker = Taker()
    taker.fair = 101.0
    (order,) = as_intents(taker.on_timer(ctx))
    assert isinstance(order, LimitOrder)
    assert (order.side, order.tif) == ("buy", "ioc") and 100.1 <= order.price < 101.5


def test_random_trader_never_adds_beyond_its_leverage() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], position=20_000, cash=100_000)
    trader = RandomTrader(RandomConfig(activity=1.0, max_leverage=2.0))
    for _ in range(50):
        for intent in as_intents(trader.on_timer(ctx)):
            assert isinstance(intent, LimitOrder) and intent.side == "sell"


def test_market_maker_widens_with_volatility() -> None:
    ctx = Context.for_test(bids=[(99.0, 10)], asks=[(101.0, 10)])
    calm, wild = MarketMaker(), MarketMaker()
    wild.variance = (20 / 1e4) ** 2  # 20 bps per √s

    def width(mm: MarketMaker) -> float:
        orders = [i for i in as_intents(mm.next_order(ctx)) if isinstance(i, LimitOrder)]
        bid = max(o.price for o in orders if o.side == "buy")
        ask = min(o.price for o in orders if o.side == "sell")
        return ask - bid

    assert width(wild) > width(calm) * 3


def test_the_procfile_bots_make_a_lively_reproducible_market() -> None:
    first = procfile_market().run(240)
    again = procfile_market().run(240)
    assert [f.price for f in first.trades] == [f.price for f in again.trades]
    by_symbol = {s: len(p) for s, p in first.prices.items()}
    assert by_symbol.get("AAPL", 0) > 150 and by_symbol.get("BTC-PERP", 0) > 50
    for name, stats in first.stats.items():
        assert stats["strategy_errors"] == 0, name
    changes = [abs(equity - start) for equity, start in _equity_changes(first.equity)]
    assert max(changes) > 1_000  # somebody made or lost real money


def _equity_changes(equity: dict[str, float]) -> list[tuple[float, float]]:
    start = {account.name: account.cash for account in load_config(None).accounts}
    return [(value, start[name]) for name, value in equity.items()]


# --------------------------------------------------------------------------- taker


def test_taker_fair_value_is_pulled_back_to_the_reference_price() -> None:
    ctx = Context.for_test(bids=[(119.9, 10)], asks=[(120.1, 10)], reference_price=100.0)
    taker = Taker(TakerConfig(volatility_bps=0.0, reference_halflife_s=10.0, interval_s=1.0))
    taker.fair = 120.0
    for _ in range(10):
        ctx.now_ns += 1_000_000_000
        taker.on_timer(ctx)
    assert taker.fair is not None and 109.0 < taker.fair < 110.0  # half-way back in log terms


def test_taker_keeps_its_orders_inside_the_price_band() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], trades=[(100.0, 1, "buy")])
    taker = Taker(TakerConfig(volatility_bps=0.0, reference_halflife_s=0.0))
    taker.fair = 150.0  # the band (10%) allows at most 110
    (order,) = as_intents(taker.on_timer(ctx))
    assert isinstance(order, LimitOrder) and order.side == "buy" and order.price <= 110.0


# --------------------------------------------------------------------------- margin


def test_affordable_cuts_orders_to_the_margin_left() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], cash=10_000)  # IM 10%
    assert affordable(ctx, "buy", 2_000, 100.0) == 950  # 95% of 10,000 / (0.1 × 100)
    assert affordable(ctx, "buy", 10, 100.0) == 10


def test_affordable_lets_a_position_be_reduced_when_nothing_else_fits() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], cash=1_000, position=100)
    assert affordable(ctx, "buy", 5, 100.0) == 0
    # selling never raises the margin above today's until the position is flipped as far
    assert affordable(ctx, "sell", 300, 100.0) == 200


def test_a_broke_account_sends_nothing() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)], cash=0)
    trader = RandomTrader(RandomConfig(activity=1.0, market_probability=0.5))
    taker = Taker(TakerConfig(noise_probability=1.0))
    for _ in range(50):
        assert as_intents(trader.on_timer(ctx)) == []
        assert as_intents(taker.on_timer(ctx)) == []


# --------------------------------------------------------------------------- quoting


def test_a_sweep_moves_the_anchor_at_most_the_clip() -> None:
    anchor = Anchor(follow=0.5, trade_clip_bps=15.0, clip_window_s=1.0)
    anchor.price = 100.0
    for i in range(50):  # a liquidation walking the book down, one command after another
        anchor.on_trade(99.0 - i * 0.1, ts=1_000 + i * 1_000_000)
    assert anchor.price >= 100.0 * (1 - 15 / 1e4) - 1e-9
    anchor.on_trade(99.0, ts=3_000_000_000)  # a second later: a new burst may move it again
    assert anchor.price < 100.0 * (1 - 15 / 1e4)


def test_ladder_sizes_grow_away_from_the_touch() -> None:
    ctx = Context.for_test(bids=[(99.9, 10)], asks=[(100.1, 10)])
    levels = ladder(ctx, "buy", 99.95, 4, 0.05, 10, None, growth=1.5)
    assert [qty for _, qty in levels] == [10, 15, 22, 34]
    assert [price for price, _ in levels] == sorted((p for p, _ in levels), reverse=True)


# --------------------------------------------------------------------------- gambler

S = 1_000_000_000


def _market(mid: float, now_s: float, *, cash: float = 100_000.0, position: int = 0) -> Context:
    bids, asks = [(mid - 0.05, 1000)], [(mid + 0.05, 1000)]
    ctx = Context.for_test(bids=bids, asks=asks, cash=cash, position=position)
    ctx.now_ns = int(now_s * S)
    return ctx


def _warm_up(gambler: Gambler, start: float, *, cash: float = 100_000.0) -> None:
    for second in range(0, 61, 5):
        assert as_intents(gambler.on_timer(_market(start, second, cash=cash))) == []


def test_gambler_bets_nearly_all_its_margin_on_the_move() -> None:
    gambler = Gambler()
    _warm_up(gambler, 100.0)
    ctx = _market(101.0, 65)
    (order,) = as_intents(gambler.on_timer(ctx))
    assert isinstance(order, LimitOrder) and (order.side, order.tif) == ("buy", "ioc")
    margin = order.qty * order.price * 0.1
    assert 0.9 * ctx.equity < margin <= 0.95 * ctx.equity
    assert order.price <= 101.05 * 1.001 + 0.01  # at most max_slippage_bps through the touch


def test_contrarian_gambler_bets_against_the_move() -> None:
    gambler = Gambler(GamblerConfig(contrarian=True))
    _warm_up(gambler, 100.0)
    (order,) = as_intents(gambler.on_timer(_market(101.0, 65)))
    assert isinstance(order, LimitOrder) and order.side == "sell"


def test_gambler_takes_profit_and_has_no_stop_loss() -> None:
    gambler = Gambler(GamblerConfig(take_profit_bps=100))
    _warm_up(gambler, 100.0)
    (bet,) = as_intents(gambler.on_timer(_market(101.0, 65)))
    held = bet.qty  # type: ignore[union-attr]
    losing = _market(97.0, 70, position=held, cash=50_000)
    assert as_intents(gambler.on_timer(losing)) == []  # it holds on (and never adds)
    (close,) = as_intents(gambler.on_timer(_market(102.1, 75, position=held)))
    assert isinstance(close, LimitOrder) and (close.side, close.qty) == ("sell", held)


def test_gambler_rests_quietly_when_broke_or_being_liquidated() -> None:
    broke = Gambler()
    _warm_up(broke, 100.0, cash=0.0)
    for second in range(65, 600, 5):
        assert as_intents(broke.on_timer(_market(100.0 + second / 100, second, cash=0.0))) == []
    liquidating = Gambler()
    _warm_up(liquidating, 100.0)
    ctx = _market(101.0, 65)
    assert isinstance(ctx.account_state, AccountUpdate)
    ctx.account_state = msgspec.structs.replace(ctx.account_state, liquidating=True)
    assert as_intents(liquidating.on_timer(ctx)) == []


@pytest.mark.parametrize("seconds_later", [5, 25])
def test_gambler_pauses_after_a_reject(seconds_later: int) -> None:
    gambler = Gambler(GamblerConfig(cooldown_s=20))
    _warm_up(gambler, 100.0)
    ctx = _market(101.0, 65)
    assert as_intents(gambler.on_timer(ctx))
    gambler.on_execution(ctx, _rejected())
    later = as_intents(gambler.on_timer(_market(101.0, 65 + seconds_later)))
    assert bool(later) == (seconds_later > 20)


def _rejected() -> ExecutionReport:
    return ExecutionReport(
        account="test", exec_type="rejected", status="rejected", order_id=None,
        client_order_id="c1", symbol="TEST", side="buy", order_type="limit", tif="ioc",
        price=101.2, qty=9000, cum_qty=0, leaves_qty=0, avg_px=0.0,
        reject_reason="insufficient_margin", text="initial margin would exceed equity",
        ts=1, seq=1,
    )  # fmt: skip
