"""Icebergs (``display_qty``, PROTOCOL §3.1): only the shown slice is on the book and the feed;
each refill goes to the back of its price's queue, so the hidden part trades only after every
order shown at that price."""

from __future__ import annotations

from exchange.core import Exchange
from exchange.protocol.messages import BookDelta, NewOrder, SetStatus
from tests.unit.core_helpers import SYMBOL, Driver, fills, make_exchange, order_id, reports


def deltas(events: list[object]) -> list[BookDelta]:
    return [e for e in events if isinstance(e, BookDelta)]


def test_only_the_slice_is_shown_and_reports_tell_the_owner_everything() -> None:
    d = Driver(make_exchange())
    out = d.order("a", "sell", 100, 101.0, display_qty=10)
    (new,) = reports(out)
    assert (new.qty, new.leaves_qty, new.display_qty) == (100, 100, 10)
    assert deltas(out)[0].asks == [(101.0, 10)]
    assert d.ladder()[1] == [(101.0, 10)]
    info = d.ex.open_orders("a")[0]
    assert (info.leaves_qty, info.display_qty) == (100, 10)


def test_a_refill_goes_to_the_back_of_its_price() -> None:
    d = Driver(make_exchange())
    iceberg = order_id(d.order("a", "sell", 30, 101.0, display_qty=10))
    plain = order_id(d.order("b", "sell", 5, 101.0))
    out = d.order("c", "buy", 12, 101.0)
    # 10 from the iceberg's slice, then the plain order (ahead of the refill), then nothing
    # more was needed: 10 + 2.
    assert [(f.sell_order_id, f.qty) for f in fills(out)] == [(iceberg, 10), (plain, 2)]
    assert d.ladder()[1] == [(101.0, 13)]  # 3 of the plain order + the new slice of 10
    out = d.order("c", "buy", 20, 101.0)
    assert [(f.sell_order_id, f.qty) for f in fills(out)] == [
        (plain, 3),
        (iceberg, 10),
        (iceberg, 7),  # the hidden part, slice after slice: nothing else is shown there
    ]
    assert reports(out, "a")[-1].leaves_qty == 3


def test_an_iceberg_that_crosses_takes_fully_then_rests_its_slice() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 4, 100.0)
    out = d.order("a", "buy", 50, 100.0, display_qty=5)
    assert sum(f.qty for f in fills(out)) == 4
    assert d.ladder()[0] == [(100.0, 5)]


def test_display_qty_needs_a_resting_limit_order() -> None:
    d = Driver(make_exchange())
    for kw in ({"tif": "ioc"}, {"tif": "fok"}):
        refused = reports(d.order("a", "buy", 10, 100.0, display_qty=2, **kw))[0]
        assert (refused.exec_type, refused.reject_reason) == ("rejected", "invalid_order")
    refused = reports(d.order("a", "buy", 10, display_qty=2))[0]  # market
    assert refused.reject_reason == "invalid_order"


def test_amends_of_an_iceberg() -> None:
    d = Driver(make_exchange())
    iceberg = order_id(d.order("a", "buy", 40, 99.0, display_qty=10))
    d.order("b", "buy", 5, 99.0)
    d.amend("a", order_id=iceberg, qty=35)  # hidden part shrinks first, keeps its place
    assert d.ladder()[0] == [(99.0, 15)]
    d.amend("a", order_id=iceberg, qty=4)  # now the slice too
    assert d.ladder()[0] == [(99.0, 9)]
    out = d.order("c", "sell", 4, 99.0)
    assert [f.buy_order_id for f in fills(out)] == [iceberg]  # kept time priority


def test_in_an_auction_an_iceberg_counts_whole() -> None:
    """The uncross is one price that must clear the book, so hidden parts take part: 30
    bought against 25 sold trades 25 (at 99: as good as 101 on quantity and imbalance, both
    1.00 from the reference, the lower), and the iceberg shows what is left."""
    d = Driver(make_exchange())
    d.send("", SetStatus(symbol=SYMBOL, status="auction"))
    d.order("a", "buy", 30, 101.0, display_qty=10)
    d.order("c", "buy", 3, 101.0)
    out = d.order("b", "sell", 25, 99.0)
    assert d.ladder()[0] == [(101.0, 13)]  # the feed still shows only the slice
    out = d.send("", SetStatus(symbol=SYMBOL, status="open"))
    trades = fills(out)
    assert {f.price for f in trades} == {99.0} and sum(f.qty for f in trades) == 25
    # Priority at 101: the iceberg's slice, the plain order, then the hidden part.
    assert [(f.buy_account, f.qty) for f in trades] == [("a", 10), ("c", 3), ("a", 12)]
    assert d.ladder() == ([(101.0, 8)], [])


def test_icebergs_survive_a_snapshot_with_a_part_filled_slice() -> None:
    d = Driver(make_exchange())
    d.order("a", "sell", 30, 101.0, display_qty=10)
    d.order("b", "buy", 4, 101.0)
    restored = Exchange.restore(d.ex.config, d.ex.snapshot())
    assert restored.state_hash() == d.ex.state_hash()
    again = Driver(restored)
    again.ts = d.ts
    out = again.send("c", NewOrder(symbol=SYMBOL, side="buy", qty=8, price=101.0))
    assert [f.qty for f in fills(out)] == [6, 2]  # the rest of the slice, then a new one
