"""The bots' API for stop / take-profit orders and brackets: the intents, the wire requests
the runner makes of them, and a bracket acting as one-cancels-the-other on the core."""

from __future__ import annotations

from bots.api import (
    ConditionalOrder,
    Context,
    LimitOrder,
    as_intents,
    bracket,
    stop,
    take_profit,
)
from bots.state import BotState
from exchange.protocol.messages import NewOrder
from tests.unit.core_helpers import Driver, make_exchange, reports


def test_helpers_build_the_conditional_types() -> None:
    assert stop("sell", 2, 95.0) == ConditionalOrder(
        side="sell", qty=2, trigger_price=95.0, order_type="stop"
    )
    assert stop("buy", 2, 105.0, 105.5).order_type == "stop_limit"
    assert take_profit("sell", 2, 110.0).order_type == "take_profit"
    limit = take_profit("buy", 1, 90.0, 90.5, reduce_only=True)
    assert (limit.order_type, limit.price, limit.reduce_only) == ("take_profit_limit", 90.5, True)
    assert bracket(0, 110.0, 90.0) == []
    exits = bracket(-3, 90.0, 110.0, symbol="XYZ")
    assert [(e.side, e.qty, e.order_type, e.trigger_price, e.reduce_only) for e in exits] == [  # type: ignore[union-attr]
        ("buy", 3, "take_profit", 90.0, True),
        ("buy", 3, "stop", 110.0, True),
    ]
    assert as_intents(exits) == exits
    assert as_intents(stop("sell", 1, 95.0)) == [stop("sell", 1, 95.0)]


def test_the_runner_sends_them_as_new_orders_and_tracks_them() -> None:
    state = BotState(Context(account="me", symbols=["XYZ"], depth=5))
    request = state.request_for(stop("sell", 2, 95.0, 94.5, reduce_only=True), "c1")
    assert request == NewOrder(
        symbol="XYZ",
        side="sell",
        qty=2,
        order_type="stop_limit",
        price=94.5,
        trigger_price=95.0,
        reduce_only=True,
        client_order_id="c1",
    )
    order = state.context.orders["c1"]
    assert (order.order_type, order.trigger_price, order.reduce_only) == ("stop_limit", 95.0, True)
    request = state.request_for(LimitOrder("buy", 99.0, 1, reduce_only=True), "c2")
    assert isinstance(request, NewOrder) and request.reduce_only


def test_a_bracket_is_one_cancels_the_other_through_reduce_only() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 3, 100.0)
    d.order("a", "buy", 3, 100.0)  # a is long 3
    state = BotState(Context(account="a", symbols=["XYZ"], depth=5))
    for number, intent in enumerate(bracket(3, 105.0, 95.0)):
        request = state.request_for(intent, f"x{number}")
        d.send("a", request)
    assert [o.order_type for o in d.ex.open_orders("a")] == ["take_profit", "stop"]
    d.order("c", "buy", 10, 104.0)  # where the take-profit will sell
    d.order("b", "sell", 1, 105.0)
    out = d.order("c", "buy", 1, 105.0)  # prints 105: the take-profit fires and sells 3
    mine = reports(out, "a")
    assert [(r.client_order_id, r.exec_type) for r in mine] == [
        ("x0", "triggered"),
        ("x0", "trade"),
        ("x1", "expired"),
    ]
    assert mine[-1].reject_reason == "reduce_only"
    assert d.ex.open_orders("a") == []


def test_a_limit_intent_can_be_an_iceberg() -> None:
    from bots.api import Context, LimitOrder
    from bots.state import BotState

    ctx = Context.for_test()
    request = BotState(ctx).request_for(LimitOrder("buy", 99.0, 50, display_qty=5), "c1")
    assert request is not None and request.display_qty == 5  # type: ignore[union-attr]
