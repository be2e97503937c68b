"""The example strategy (examples/mean_reversion.py), tested the way docs/strategies.md
teaches: a hand-made Context, no sockets."""

from __future__ import annotations

from bots.api import Cancel, Context, LimitOrder, Order, as_intents
from examples.mean_reversion import MeanReversion, MeanReversionConfig

CONFIG = MeanReversionConfig(window=3, threshold_bps=10, size=2, max_position=4)


def test_sells_at_the_ask_when_the_mid_is_above_the_average() -> None:
    ctx = Context.for_test(bids=[(100.9, 5)], asks=[(101.1, 5)], trades=[(100.0, 1, "buy")] * 3)
    assert as_intents(MeanReversion(CONFIG).next_order(ctx)) == [
        LimitOrder("sell", 101.1, 2, post_only=True)
    ]


def test_buys_at_the_bid_below_the_average_but_not_past_max_position() -> None:
    trades = [(102.0, 1, "sell")] * 3
    ctx = Context.for_test(bids=[(100.9, 5)], asks=[(101.1, 5)], trades=trades)
    assert as_intents(MeanReversion(CONFIG).next_order(ctx)) == [
        LimitOrder("buy", 100.9, 2, post_only=True)
    ]
    full = Context.for_test(bids=[(100.9, 5)], asks=[(101.1, 5)], trades=trades, position=4)
    assert as_intents(MeanReversion(CONFIG).next_order(full)) == []


def test_waits_for_enough_trades_and_for_its_order() -> None:
    strategy = MeanReversion(CONFIG)
    few = Context.for_test(bids=[(100.9, 5)], asks=[(101.1, 5)], trades=[(100.0, 1, "buy")])
    assert as_intents(strategy.next_order(few)) == []


def test_stale_orders_are_cancelled_on_the_timer() -> None:
    order = Order(
        client_order_id="c1", order_id=1, symbol="TEST", side="buy",
        order_type="limit", price=100.9, qty=2, leaves_qty=2, status="new",
    )  # fmt: skip
    ctx = Context.for_test(bids=[(100.9, 5)], asks=[(101.1, 5)], orders=[order])
    strategy = MeanReversion(CONFIG)
    strategy.placed_at["c1"] = 0
    ctx.now_ns = 1_000_000_000
    assert as_intents(strategy.on_timer(ctx)) == []
    ctx.now_ns = 6_000_000_000
    assert as_intents(strategy.on_timer(ctx)) == [Cancel(order_id=1, client_order_id="c1")]
