"""The public Strategy API: books, contexts, intents, config discovery (no I/O)."""

from __future__ import annotations

import pytest

from bots.api import (
    Book,
    Cancel,
    Context,
    LimitOrder,
    MarketOrder,
    Order,
    Strategy,
    StrategyConfig,
    amend,
    as_intents,
    buy,
    cancel,
    sell,
)


def test_book_levels_best_first_and_derived_prices() -> None:
    book = Book("X", bids=[(99.0, 5), (100.0, 2)], asks=[(102.0, 1), (101.0, 4)])
    assert book.bids == [(100.0, 2), (99.0, 5)]
    assert book.asks == [(101.0, 4), (102.0, 1)]
    assert book.best_bid == (100.0, 2)
    assert book.mid == 100.5
    assert book.spread == 1.0
    assert book.qty_at("sell", 102.0) == 1


def test_book_apply_changes_removes_and_trims_to_depth() -> None:
    book = Book("X", bids=[(100.0, 2), (99.0, 5)], asks=[(101.0, 4)], seq=1)
    book.apply(bids=[(100.0, 0), (98.0, 7), (97.0, 1)], asks=[(101.0, 3)], seq=2, ts=5, depth=2)
    assert book.bids == [(99.0, 5), (98.0, 7)]
    assert book.asks == [(101.0, 3)]
    assert (book.seq, book.ts) == (2, 5)


def test_empty_book_has_no_mid() -> None:
    book = Book("X", asks=[(101.0, 1)])
    assert book.best_bid is None and book.mid is None and book.spread is None


@pytest.mark.parametrize(
    ("tick", "price", "down", "up"),
    [
        (0.01, 101.256, 101.25, 101.26),
        (0.01, 101.25, 101.25, 101.25),
        (0.5, 65000.3, 65000.0, 65000.5),
        (0.05, 3200.07, 3200.05, 3200.1),
        (0.01, 0.001, 0.01, 0.01),
    ],
)
def test_rounding_to_ticks(tick: float, price: float, down: float, up: float) -> None:
    ctx = Context.for_test(tick_size=tick)
    assert ctx.round_down(price) == down
    assert ctx.round_up(price) == up


def test_context_for_test_exposes_book_position_trades_and_orders() -> None:
    order = Order(
        client_order_id="c1", order_id=7, symbol="TEST", side="buy",
        order_type="limit", price=99.0, qty=3, leaves_qty=3, status="new",
    )  # fmt: skip
    ctx = Context.for_test(
        bids=[(99.0, 10)],
        asks=[(101.0, 10)],
        position=-4,
        cash=5_000.0,
        trades=[(100.0, 2, "buy")],
        orders=[order],
    )
    assert ctx.bbo() == (99.0, 101.0)
    assert ctx.mid() == 100.0
    assert ctx.position() == -4
    assert ctx.cash == ctx.equity == 5_000.0
    assert [t.price for t in ctx.trades()] == [100.0]
    assert ctx.open_orders() == [order]
    assert ctx.open_orders(side="sell") == []
    assert ctx.instrument() is not None


def test_context_mid_falls_back_to_last_trade_then_reference() -> None:
    assert Context.for_test(trades=[(97.5, 1, "sell")]).mid() == 97.5
    assert Context.for_test(reference_price=42.0).mid() == 42.0


def test_config_is_discovered_from_the_generic_parameter() -> None:
    class Cfg(StrategyConfig):
        size: int = 3

    class Mine(Strategy[Cfg]):
        pass

    class Explicit(Strategy[Cfg]):
        Config = StrategyConfig

    assert Mine.Config is Cfg
    assert Mine().config == Cfg(size=3)
    assert Mine(Cfg(size=5)).config.size == 5
    assert Explicit.Config is StrategyConfig


def test_intent_helpers() -> None:
    assert buy(3, 10.0) == LimitOrder("buy", 10.0, 3)
    assert sell(2) == MarketOrder("sell", 2)
    order = Order(
        client_order_id="c", order_id=1, symbol="S", side="buy",
        order_type="limit", price=1.0, qty=1,
    )  # fmt: skip
    assert cancel(order) == Cancel(order_id=1, client_order_id="c")
    assert amend(order, price=2.0).price == 2.0


def test_as_intents_accepts_none_one_or_many_and_rejects_junk() -> None:
    one = buy(1, 1.0)
    assert as_intents(None) == []
    assert as_intents(one) == [one]
    assert as_intents(x for x in [one, one]) == [one, one]
    with pytest.raises(TypeError, match="not an order intent"):
        as_intents(["buy 1"])  # type: ignore[list-item]
