"""Conditional (stop / take-profit), scheduled (``activate_at``) and reduce-only orders
(PROTOCOL §3.1), driven through the scenario Driver (invariants checked after every command)."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.core import Exchange
from exchange.protocol.messages import AdvanceTime, CancelAll, ExecutionReport
from tests.unit.core_helpers import Driver, fills, kinds, make_exchange, order_id, reports

T = 1_000_000  # the Driver's ts start at 1_001


def rejected(out: list[Any]) -> ExecutionReport:
    (report,) = reports(out)
    assert (report.exec_type, report.status) == ("rejected", "rejected")
    return report


def print_at(d: Driver, price: float) -> list[Any]:
    """One lot trades at ``price`` between b (seller, resting) and c (buyer)."""
    d.order("b", "sell", 1, price)
    return d.order("c", "buy", 1, price, tif="ioc")


def print_sell(d: Driver, price: float) -> list[Any]:
    """One lot trades at ``price`` between c (buyer, resting) and b (seller)."""
    d.order("c", "buy", 1, price)
    return d.order("b", "sell", 1, price, tif="ioc")


def advance(d: Driver, ts: int) -> list[Any]:
    d.ts = ts - 1
    return d.send("", AdvanceTime())


def triggered(out: list[Any], account: str | None = None) -> list[int]:
    return [r.order_id for r in reports(out, account) if r.exec_type == "triggered"]  # type: ignore[misc]


def position(d: Driver, account: str) -> int:
    holding = d.ex.account(account).holdings.get("XYZ")  # type: ignore[union-attr]
    return holding.qty if holding else 0


# ---------------------------------------------------------------------- directions


@pytest.mark.parametrize(
    ("order_type", "side", "trigger", "not_yet", "fires"),
    [
        ("stop", "buy", 101.0, 100.5, 101.0),  # buy stop: last >= trigger
        ("stop", "sell", 99.0, 99.5, 99.0),  # sell stop: last <= trigger
        ("take_profit", "buy", 99.0, 99.5, 98.5),  # buy take-profit: last <= trigger
        ("take_profit", "sell", 101.0, 100.5, 101.5),  # sell take-profit: last >= trigger
    ],
)
def test_each_trigger_direction(
    order_type: str, side: str, trigger: float, not_yet: float, fires: float
) -> None:
    d = Driver(make_exchange())
    out = d.order("a", side, 2, order_type=order_type, trigger_price=trigger)
    assert kinds(out) == ["new/new"]
    (new,) = reports(out)
    assert (new.trigger_price, new.triggered, new.order_type, new.price) == (
        trigger,
        False,
        order_type,
        None,
    )
    oid = new.order_id
    assert d.ladder() == ([], [])  # off the book
    # liquidity for the fired market order, away from the prints
    d.order("b", "sell", 5, 103.0)
    d.order("c", "buy", 5, 97.0)
    assert triggered(print_at(d, not_yet)) == []
    out = print_at(d, fires)
    assert triggered(out) == [oid]
    mine = reports(out, "a")
    assert [r.exec_type for r in mine] == ["triggered", "trade"]
    assert (mine[0].status, mine[0].triggered, mine[0].order_type) == ("new", True, order_type)
    assert mine[1].status == "filled" and mine[1].triggered
    assert mine[1].last_px == (103.0 if side == "buy" else 97.0)
    assert d.ex.open_orders("a") == []


def test_a_trigger_met_at_acceptance_fires_at_once() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 5, 100.5)
    # last is the reference price 100.00 before any trade: a buy stop at 100 is met
    out = d.order("a", "buy", 2, order_type="stop", trigger_price=100.0, req_id=7)
    mine = reports(out, "a")
    assert [f"{r.exec_type}/{r.status}" for r in mine] == [
        "new/new",
        "triggered/new",
        "trade/filled",
    ]
    assert mine[0].req_id == 7 and mine[1].req_id is None
    assert mine[2].last_px == 100.5


def test_stop_limit_rests_at_its_price_after_firing() -> None:
    d = Driver(make_exchange())
    out = d.order("a", "sell", 3, 98.5, order_type="stop_limit", trigger_price=99.0)
    oid = order_id(out)
    assert reports(out)[0].price == 98.5
    out = print_sell(d, 99.0)
    assert triggered(out) == [oid]
    assert d.ladder()[1] == [(98.5, 3)]
    (info,) = d.ex.open_orders("a")
    assert (info.order_type, info.triggered, info.trigger_price) == ("stop_limit", True, 99.0)


def test_gap_through_the_trigger_fires_on_the_print_beyond_it() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "sell", 2, order_type="stop", trigger_price=99.0))
    d.order("c", "buy", 1, 99.5)
    d.order("c", "buy", 10, 97.0)
    out = d.order("b", "sell", 2, tif="ioc", price=90.0)  # prints 99.5 then 97 (gap past 99)
    assert triggered(out) == [oid]
    (trade,) = [r for r in reports(out, "a") if r.exec_type == "trade"]
    assert (trade.last_px, trade.last_qty, trade.status) == (97.0, 2, "filled")


def test_a_stop_firing_into_an_empty_book_expires_no_liquidity() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "sell", 2, order_type="stop", trigger_price=99.0))
    out = print_sell(d, 99.0)
    mine = reports(out, "a")
    assert [(r.exec_type, r.status, r.reject_reason) for r in mine] == [
        ("triggered", "new", None),
        ("expired", "expired", "no_liquidity"),
    ]
    assert mine[1].order_id == oid and mine[1].leaves_qty == 0
    assert d.ex.open_orders("a") == []
    assert d.cancel("a", order_id=oid)[0].reject_reason == "too_late"


# ---------------------------------------------------------------------- cascades


def test_a_cascade_of_three_stops_fires_in_the_order_the_conditions_were_met() -> None:
    d = Driver(make_exchange())
    for px in (99.0, 98.0, 97.0):
        d.order("c", "buy", 1, px)
    d.order("c", "buy", 5, 96.0)
    third = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=97.0))
    first = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=99.0))
    second = order_id(d.order("b", "sell", 1, order_type="stop", trigger_price=98.0))
    out = d.order("b", "sell", 1, tif="ioc", price=99.0)  # prints 99
    assert triggered(out) == [first, second, third]
    prices = [f.price for f in fills(out)]
    assert prices == [99.0, 98.0, 97.0, 96.0]
    seqs = [e.seq for e in out if hasattr(e, "seq") and e.seq is not None]
    assert seqs == sorted(seqs)


def test_orders_met_by_one_print_fire_by_acceptance_not_by_trigger() -> None:
    d = Driver(make_exchange())
    d.order("c", "buy", 10, 98.0)
    x = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=98.5))
    y = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=99.0))
    z = order_id(d.order("b", "sell", 1, order_type="stop", trigger_price=99.0))
    out = d.order("b", "sell", 1, tif="ioc", price=98.0)  # one print at 98 meets all three
    assert triggered(out) == [x, y, z]


def test_a_sweep_fires_in_print_order_then_acceptance() -> None:
    d = Driver(make_exchange())
    d.order("c", "buy", 1, 99.0)
    d.order("c", "buy", 10, 98.5)
    x = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=98.5))
    y = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=99.0))
    out = d.order("b", "sell", 2, tif="ioc", price=98.0)  # prints 99 (y) then 98.5 (x)
    assert triggered(out) == [y, x]


def test_stops_fire_from_a_liquidations_trades() -> None:
    d = Driver(make_exchange({"a": 1e7, "b": 1e7, "c": 1e7, "poor": 1_000.0}))
    # poor goes long 90 at 100 (IM 10% = 900 of 1000 equity)
    d.order("b", "sell", 90, 100.0)
    d.order("poor", "buy", 90, 100.0)
    d.order("c", "buy", 200, 93.0)  # where the liquidation will sell
    stop = order_id(d.order("a", "sell", 1, order_type="stop", trigger_price=93.0))
    # the mark falls to 93.25 (bid 93 / ask 93.5): poor's equity 325 < maintenance 419.6
    out = d.order("b", "sell", 1, 93.5)
    assert [type(e).__name__ for e in out].count("Liquidation") == 1
    assert triggered(out) == [stop]
    assert [f.price for f in fills(out)] == [93.0, 93.0]
    assert fills(out)[0].liquidation and not fills(out)[1].liquidation


# ---------------------------------------------------------------------- validation


def test_bad_combinations_are_rejected_invalid_order() -> None:
    d = Driver(make_exchange())
    bad: list[dict[str, Any]] = [
        {"price": 99.0, "trigger_price": 98.0},  # trigger on a plain limit
        {"order_type": "market", "trigger_price": 98.0},  # trigger on a plain market
        {"order_type": "stop"},  # no trigger
        {"order_type": "stop_limit", "price": 99.0},  # no trigger
        {"order_type": "stop_limit", "trigger_price": 98.0},  # no price
        {"order_type": "take_profit_limit", "trigger_price": 98.0},  # no price
        {"order_type": "stop", "price": 99.0, "trigger_price": 98.0},  # price on a stop
        {"order_type": "take_profit", "price": 99.0, "trigger_price": 98.0},
        {"price": 99.0, "activate_at": d.ts},  # not in the future
        {"order_type": "stop", "trigger_price": 98.0, "activate_at": T},
    ]
    for fields in bad:
        report = rejected(d.send("a", _new("sell", 1, **fields)))
        assert report.reject_reason == "invalid_order", fields
        assert report.text
    report = rejected(d.send("a", _new("sell", 1, order_type="stop", trigger_price=98.001)))
    assert report.reject_reason == "invalid_price"
    assert report.trigger_price == 98.001  # echoed as sent
    assert d.ex.open_orders("a") == []


def _new(side: str, qty: int, **kw: Any) -> Any:
    from exchange.protocol.messages import NewOrder

    if "order_type" not in kw and kw.get("price") is None:
        kw["order_type"] = "market"
    return NewOrder(symbol="XYZ", side=side, qty=qty, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- reduce-only


def test_reduce_only_without_a_position_is_rejected() -> None:
    d = Driver(make_exchange())
    assert rejected(d.order("a", "sell", 1, 101.0, reduce_only=True)).reject_reason == (
        "reduce_only"
    )
    print_at(d, 100.0)  # c is long 1 now: a c buy would grow it
    assert rejected(d.order("c", "buy", 1, 99.0, reduce_only=True)).reject_reason == ("reduce_only")


def test_reduce_only_larger_than_the_position_is_cut_at_acceptance() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 3, 100.0)
    d.order("a", "buy", 3, 100.0)
    out = d.order("a", "sell", 5, 105.0, reduce_only=True)
    (new,) = reports(out)
    assert (new.exec_type, new.qty, new.leaves_qty, new.reduce_only) == ("new", 3, 3, True)
    assert new.text is not None and "cut" in new.text
    assert d.ladder()[1] == [(105.0, 3)]


def test_fills_elsewhere_cut_a_resting_reduce_only_order_then_expire_it() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 5, 100.0)
    d.order("a", "buy", 5, 100.0)
    ro = order_id(d.order("a", "sell", 5, 110.0, reduce_only=True))
    d.order("a", "sell", 3, 101.0)
    out = d.order("c", "buy", 3, 101.0)
    cut = [r for r in reports(out, "a") if r.order_id == ro]
    assert [(r.exec_type, r.qty, r.leaves_qty) for r in cut] == [("replaced", 2, 2)]
    assert d.ladder()[1] == [(110.0, 2)]
    d.order("a", "sell", 2, 101.0)
    out = d.order("c", "buy", 2, 101.0)
    (end,) = [r for r in reports(out, "a") if r.order_id == ro]
    assert (end.exec_type, end.status, end.reject_reason) == ("expired", "expired", "reduce_only")
    assert d.ladder()[1] == []
    assert position(d, "a") == 0


def test_reduce_only_makers_never_flip_the_position_within_one_sweep() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 2, 100.0)
    d.order("a", "buy", 2, 100.0)
    first = order_id(d.order("a", "sell", 2, 101.0, reduce_only=True))
    second = order_id(d.order("a", "sell", 2, 101.0, reduce_only=True))
    out = d.order("c", "buy", 4, 101.0, tif="ioc")
    assert [f.sell_order_id for f in fills(out)] == [first]
    (end,) = [r for r in reports(out, "a") if r.order_id == second]
    assert end.reject_reason == "reduce_only"
    assert position(d, "a") == 0


def test_reduce_only_stop_larger_than_the_position() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 3, 100.0)
    d.order("a", "buy", 3, 100.0)
    out = d.order("a", "sell", 10, order_type="stop", trigger_price=99.0, reduce_only=True)
    (new,) = reports(out)
    assert (new.qty, new.reduce_only) == (3, True) and "cut" in (new.text or "")
    d.order("c", "buy", 10, 98.0)
    out = print_sell(d, 99.0)
    mine = reports(out, "a")
    assert [(r.exec_type, r.qty) for r in mine] == [("triggered", 3), ("trade", 3)]
    assert position(d, "a") == 0


def test_reduce_only_stop_shrinks_with_the_position_then_fires_for_what_is_left() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 3, 100.0)
    d.order("a", "buy", 3, 100.0)
    stop = order_id(
        d.order("a", "sell", 3, order_type="stop", trigger_price=99.0, reduce_only=True)
    )
    d.order("c", "buy", 2, 100.0)
    out = d.order("a", "sell", 2, 100.0)
    (cut,) = [r for r in reports(out, "a") if r.order_id == stop]
    assert (cut.exec_type, cut.qty) == ("replaced", 1)
    d.order("c", "buy", 10, 98.0)
    out = print_sell(d, 99.0)
    assert [(r.exec_type, r.qty) for r in reports(out, "a")] == [("triggered", 1), ("trade", 1)]
    assert position(d, "a") == 0


# ---------------------------------------------------------------------- activate_at


def test_activate_at_enters_matching_exactly_at_its_time() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 5, 100.0)
    out = d.order("a", "buy", 2, 100.0, activate_at=T, client_order_id="later")
    (new,) = reports(out)
    assert (new.exec_type, new.activate_at, new.triggered) == ("new", T, False)
    assert d.ladder()[0] == []  # not in the book, no trade
    assert d.ex.next_deadline() == T
    (info,) = d.ex.open_orders("a")
    assert (info.activate_at, info.triggered) == (T, False)
    assert reports(advance(d, T - 1)) == []
    out = advance(d, T)
    mine = reports(out, "a")
    assert [(r.exec_type, r.status) for r in mine] == [("triggered", "new"), ("trade", "filled")]
    assert mine[0].ts == T and mine[0].triggered
    assert d.ex.next_deadline() is None


def test_activate_at_then_gtd_expiry_in_time_order() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 2, 99.0, activate_at=T, tif="gtd", expire_at=T + 10))
    assert d.ex.next_deadline() == T
    out = advance(d, T + 20)
    assert [(r.order_id, r.exec_type) for r in reports(out)] == [
        (oid, "triggered"),
        (oid, "expired"),
    ]


def test_cancel_a_scheduled_order() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 2, 99.0, activate_at=T))
    assert kinds(d.cancel("a", order_id=oid)) == ["canceled/canceled"]
    assert d.ex.next_deadline() is None
    assert reports(advance(d, T)) == []


# ---------------------------------------------------------------------- amend / cancel


def test_cancel_and_cancel_all_of_untriggered_orders() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "sell", 2, order_type="stop", trigger_price=99.0))
    out = d.cancel("a", order_id=oid)
    assert kinds(out) == ["canceled/canceled"] and reports(out)[0].trigger_price == 99.0
    d.order("a", "sell", 2, 98.0, order_type="stop_limit", trigger_price=99.0)
    d.order("a", "buy", 2, order_type="take_profit", trigger_price=95.0)
    out = d.send("a", CancelAll())
    assert kinds(out) == ["canceled/canceled", "canceled/canceled"]
    holding = d.ex.account("a").holdings["XYZ"]  # type: ignore[union-attr]
    assert (holding.open_buy_qty, holding.open_sell_qty) == (0, 0)
    assert triggered(print_sell(d, 90.0)) == []


def test_amend_qty_price_and_trigger_of_an_untriggered_order() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "sell", 2, 98.0, order_type="stop_limit", trigger_price=99.0))
    out = d.amend("a", order_id=oid, qty=4, price=97.5, trigger_price=98.5)
    (rep,) = reports(out)
    assert (rep.exec_type, rep.qty, rep.price, rep.trigger_price, rep.triggered) == (
        "replaced",
        4,
        97.5,
        98.5,
        False,
    )
    assert triggered(print_sell(d, 99.0)) == []  # the old trigger no longer fires it
    out = print_sell(d, 98.5)
    assert triggered(out) == [oid]
    assert d.ladder()[1] == [(97.5, 4)]


def test_amending_the_trigger_to_a_met_price_fires_at_once() -> None:
    d = Driver(make_exchange())
    d.order("c", "buy", 5, 99.0)
    oid = order_id(d.order("a", "sell", 2, order_type="stop", trigger_price=95.0))
    out = d.amend("a", order_id=oid, trigger_price=100.0, req_id="r")
    assert kinds(out) == ["replaced/new", "triggered/new", "trade/filled", "trade/partially_filled"]
    assert reports(out)[0].req_id == "r"


def test_amend_refusals_on_conditional_orders() -> None:
    d = Driver(make_exchange())
    stop = order_id(d.order("a", "sell", 2, order_type="stop", trigger_price=95.0))
    out = d.amend("a", order_id=stop, price=94.0)
    assert out[0].reject_reason == "invalid_order"
    plain = order_id(d.order("a", "sell", 2, 120.0))
    out = d.amend("a", order_id=plain, trigger_price=110.0)
    assert out[0].reject_reason == "invalid_order"


# ---------------------------------------------------------------------- margin


def test_untriggered_orders_reserve_margin_at_their_worst_case() -> None:
    # cash 1,000, IM 10%: 10,000 of exposure at most. Band 50% around the trigger.
    d = Driver(make_exchange({"m": 1_000.0, "b": 1e7, "c": 1e7}))
    # a stop buy (market) is reserved at the band's top around its trigger: 101 -> 151.5;
    # 66 lots x 151.5 x 10% = 999.9 fits, 67 lots (1015.05) do not
    out = d.order("m", "buy", 67, order_type="stop", trigger_price=101.0)
    assert rejected(out).reject_reason == "insufficient_margin"
    oid = order_id(d.order("m", "buy", 66, order_type="stop", trigger_price=101.0))
    holding = d.ex.account("m").holdings["XYZ"]  # type: ignore[union-attr]
    assert holding.open_buy_qty == 66
    assert holding.open_buy_value == 66 * 15150  # ticks: 101.00 * 1.5
    d.cancel("m", order_id=oid)
    # a stop_limit is reserved at its limit price
    oid = order_id(d.order("m", "buy", 95, 105.0, order_type="stop_limit", trigger_price=101.0))
    assert holding.open_buy_value == 95 * 10500
    out = d.order("m", "buy", 1, 150.0, order_type="stop_limit", trigger_price=101.0)
    assert rejected(out).reject_reason == "insufficient_margin"


def test_untriggered_orders_count_against_max_open_orders() -> None:
    d = Driver(make_exchange())
    d.ex.account("a").max_open_orders = 2  # type: ignore[union-attr]
    d.order("a", "sell", 1, order_type="stop", trigger_price=90.0)
    d.order("a", "buy", 1, 90.0, activate_at=T)
    assert rejected(d.order("a", "buy", 1, 90.0)).reject_reason == "max_open_orders"


# ---------------------------------------------------------------------- snapshots


def test_snapshot_restore_keeps_untriggered_and_scheduled_orders() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 3, 100.0)
    d.order("a", "buy", 3, 100.0)
    d.order("a", "sell", 5, order_type="stop", trigger_price=99.0, reduce_only=True)
    d.order(
        "a",
        "sell",
        1,
        97.0,
        order_type="stop_limit",
        trigger_price=98.0,
        tif="gtd",
        expire_at=T * 5,
    )
    d.order("b", "buy", 1, order_type="take_profit", trigger_price=98.0)
    d.order("c", "buy", 2, 99.0, activate_at=T)
    d.order("c", "buy", 10, 97.0)
    before = d.ex.state_hash()
    restored = Exchange.restore(d.ex.config, d.ex.snapshot())
    assert restored.state_hash() == before
    assert restored.open_orders("a") == d.ex.open_orders("a")
    assert restored.next_deadline() == d.ex.next_deadline() == T
    d2 = Driver(restored)
    d2.ts = d.ts
    outs = []
    for driver in (d, d2):
        out = print_sell(driver, 99.0) + print_sell(driver, 98.0) + advance(driver, T)
        assert triggered(out)
        outs.append(out)
    assert outs[0] == outs[1]
    assert restored.state_hash() == d.ex.state_hash()


def test_amend_a_scheduled_order_keeps_its_time() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 2, 99.0, activate_at=T, client_order_id="s"))
    out = d.amend("a", client_order_id="s", qty=5, price=99.5)
    (rep,) = reports(out)
    assert (rep.exec_type, rep.qty, rep.price, rep.activate_at) == ("replaced", 5, 99.5, T)
    assert d.ex.next_deadline() == T
    out = advance(d, T)
    assert [r.exec_type for r in reports(out)] == ["triggered"]
    assert d.ladder()[0] == [(99.5, 5)]
    assert d.ex.open_orders("a")[0].order_id == oid


def test_a_gtd_stop_limit_expires_while_armed() -> None:
    d = Driver(make_exchange())
    oid = order_id(
        d.order(
            "a",
            "sell",
            1,
            97.0,
            order_type="stop_limit",
            trigger_price=98.0,
            tif="gtd",
            expire_at=T,
        )
    )
    assert d.ex.next_deadline() == T
    (rep,) = reports(advance(d, T))
    assert (rep.order_id, rep.reject_reason, rep.trigger_price) == (oid, "gtd_expired", 98.0)
    assert triggered(print_sell(d, 97.0)) == []


def test_liquidation_cancels_waiting_orders_of_the_account() -> None:
    d = Driver(make_exchange({"a": 1e7, "b": 1e7, "c": 1e7, "poor": 1_000.0}))
    d.order("b", "sell", 90, 100.0)
    d.order("poor", "buy", 90, 100.0)
    stop = order_id(d.order("poor", "sell", 90, order_type="stop", trigger_price=80.0))
    d.order("c", "buy", 200, 93.0)
    out = d.order("b", "sell", 1, 93.5)
    (end,) = [r for r in reports(out, "poor") if r.order_id == stop]
    assert end.exec_type == "canceled"
    assert d.ex.open_orders("poor") == []


def test_take_profit_limit_and_reduce_only_market() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 4, 100.0)
    d.order("a", "buy", 4, 100.0)  # a long 4 at 100
    tp = order_id(
        d.order(
            "a",
            "sell",
            4,
            102.0,
            order_type="take_profit_limit",
            trigger_price=102.0,
            reduce_only=True,
        )
    )
    out = print_at(d, 102.0)
    assert triggered(out) == [tp]
    assert d.ladder()[1] == [(102.0, 4)]
    out = d.order("c", "buy", 1, 102.0)
    assert position(d, "a") == 3
    d.order("c", "buy", 10, 99.0)
    out = d.order("a", "sell", 10, reduce_only=True)  # market, cut to 3
    (new,) = [r for r in reports(out, "a") if r.exec_type == "new"]
    assert new.qty == 3
    assert position(d, "a") == 0
    (end,) = [r for r in reports(out, "a") if r.order_id == tp]
    assert (end.exec_type, end.reject_reason) == ("expired", "reduce_only")
