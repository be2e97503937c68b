"""Built-in strategies against hand-made contexts, and together in a simulated market."""

from __future__ import annotations

from bots.api import Context, LimitOrder, Order, as_intents
from bots.strategies.maker import Maker, MakerConfig
from bots.strategies.market_maker import MarketMaker
from bots.strategies.random_trader import RandomConfig, RandomTrader
from bots.strategies.taker import Taker
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
    start = {
        "maker1": 1e6, "maker2": 1e6, "mm1": 1e6, "taker1": 2e5,
        "noise1": 5e4, "alice": 1e5, "bob": 1e5,
    }  # fmt: skip
    return [(value, start[name]) for name, value in equity.items()]
