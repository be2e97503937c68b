"""Matching scenarios from a known book: every rule asserted on events and the L2 ladder."""

from __future__ import annotations

import msgspec
import pytest

from exchange.core.state import capture
from exchange.protocol.messages import (
    Bbo,
    BookDelta,
    CancelAll,
    CancelAllDone,
    CancelReject,
    Error,
    ExecutionReport,
    NewOrder,
)
from tests.unit.core_helpers import Driver, fills, kinds, make_exchange, order_id, reports


@pytest.fixture
def book() -> Driver:
    """Asks: 101.00 a10 then b5, 102.00 c20. Bids: 99.00 a10, 98.00 b5."""
    d = Driver(make_exchange())
    d.order("a", "sell", 10, 101.0, client_order_id="a-ask")
    d.order("b", "sell", 5, 101.0)
    d.order("c", "sell", 20, 102.0)
    d.order("a", "buy", 10, 99.0)
    d.order("b", "buy", 5, 98.0)
    assert d.ladder() == ([(99.0, 10), (98.0, 5)], [(101.0, 15), (102.0, 20)])
    return d


def test_ioc_partial_across_levels_trades_at_resting_prices_in_time_order(book: Driver) -> None:
    out = book.order("c", "buy", 30, 102.0, tif="ioc")
    trades = fills(out)
    # c's own ask at 102 blocks (expire_taker): only the 101 level trades.
    assert [(t.price, t.qty, t.sell_account) for t in trades] == [(101.0, 10, "a"), (101.0, 5, "b")]
    taker = reports(out, "c")
    assert [r.exec_type for r in taker] == ["new", "trade", "trade", "expired"]
    assert taker[-1].reject_reason == "self_trade"
    assert book.ladder() == ([(99.0, 10), (98.0, 5)], [(102.0, 20)])


def test_plain_ioc_remainder_expires_without_reason(book: Driver) -> None:
    out = book.order("c", "buy", 30, 101.0, tif="ioc")
    taker = [r for r in reports(out) if r.order_id == order_id(out)]
    assert [r.exec_type for r in taker] == ["new", "trade", "trade", "expired"]
    assert taker[2].cum_qty == 15 and taker[2].last_px == 101.0
    expired = taker[-1]
    assert expired.reject_reason is None
    assert (expired.qty, expired.cum_qty, expired.leaves_qty) == (30, 15, 0)
    assert book.ladder()[1] == [(102.0, 20)]


def test_ioc_multi_level_sweep(book: Driver) -> None:
    out = book.order("b", "sell", 12, 98.0, tif="ioc", stp="expire_maker")
    # b's own bid at 98 is cancelled by expire_maker; a's 99 bid fills 10; nothing else.
    assert [(t.price, t.qty, t.buy_account) for t in fills(out)] == [(99.0, 10, "a")]
    canceled = [r for r in reports(out, "b") if r.exec_type == "canceled"]
    assert len(canceled) == 1 and canceled[0].reject_reason == "self_trade"
    assert book.ladder()[0] == []


def test_fok_kill_leaves_book_untouched(book: Driver) -> None:
    before = book.ladder()
    out = book.order("b", "buy", 36, 102.0, tif="fok")
    assert kinds(out) == ["new/new", "expired/expired"]
    assert reports(out)[-1].reject_reason == "fok_unfilled"
    assert fills(out) == []
    assert book.ladder() == before


def test_fok_fill_takes_everything(book: Driver) -> None:
    out = book.order("a", "buy", 25, 102.0, tif="fok", stp="expire_maker")
    # a's own ask (10 @101) is cancelled under expire_maker; b5 + c20 fill 25.
    assert [(t.price, t.qty) for t in fills(out)] == [(101.0, 5), (102.0, 20)]
    taker = [r for r in reports(out, "a") if r.order_id == order_id(out)]
    assert taker[-1].status == "filled" and taker[-1].leaves_qty == 0
    assert taker[-1].avg_px == pytest.approx((5 * 101 + 20 * 102) / 25)
    assert book.ladder()[1] == []


def test_gtc_sweeps_then_rests_the_remainder(book: Driver) -> None:
    out = book.order("c", "buy", 20, 101.0)
    assert [(t.price, t.qty) for t in fills(out)] == [(101.0, 10), (101.0, 5)]
    taker = [r for r in reports(out) if r.order_id == order_id(out)]
    assert [r.status for r in taker] == ["new", "partially_filled", "partially_filled"]
    assert (taker[-1].cum_qty, taker[-1].leaves_qty) == (15, 5)
    assert book.ladder() == ([(101.0, 5), (99.0, 10), (98.0, 5)], [(102.0, 20)])


def test_no_trade_through_and_price_improvement_goes_to_taker(book: Driver) -> None:
    out = book.order("c", "sell", 3, 95.0)
    assert [(t.price, t.qty, t.aggressor) for t in fills(out)] == [(99.0, 3, "sell")]


def test_fifo_with_repeated_partial_fills_of_one_maker() -> None:
    d = Driver(make_exchange())
    first = order_id(d.order("a", "sell", 100, 101.0))
    second = order_id(d.order("b", "sell", 50, 101.0))
    for n in range(1, 4):
        out = d.order("c", "buy", 10, 101.0)
        maker = [r for r in reports(out) if r.order_id == first]
        assert len(maker) == 1
        assert (maker[0].status, maker[0].cum_qty, maker[0].leaves_qty) == (
            "partially_filled",
            10 * n,
            100 - 10 * n,
        )
        assert not [r for r in reports(out) if r.order_id == second]
    out = d.order("c", "buy", 80, 101.0)
    trades = fills(out)
    assert [(t.sell_order_id, t.qty) for t in trades] == [(first, 70), (second, 10)]


def test_amend_lower_qty_keeps_priority() -> None:
    d = Driver(make_exchange())
    first = order_id(d.order("a", "buy", 10, 99.0))
    second = order_id(d.order("b", "buy", 10, 99.0))
    out = d.amend("a", order_id=first, qty=4)
    assert kinds(out) == ["replaced/new"]
    assert (reports(out)[0].qty, reports(out)[0].leaves_qty) == (4, 4)
    out = d.order("c", "sell", 4, 99.0)
    assert [t.buy_order_id for t in fills(out)] == [first]
    assert d.ladder()[0] == [(99.0, 10)]
    assert second


def test_amend_higher_qty_loses_priority() -> None:
    d = Driver(make_exchange())
    first = order_id(d.order("a", "buy", 10, 99.0))
    second = order_id(d.order("b", "buy", 10, 99.0))
    d.amend("a", order_id=first, qty=12)
    out = d.order("c", "sell", 10, 99.0)
    assert [t.buy_order_id for t in fills(out)] == [second]
    assert d.ladder()[0] == [(99.0, 12)]


def test_amend_into_the_spread_then_across_it(book: Driver) -> None:
    bid = order_id(book.order("c", "buy", 8, 98.0))
    out = book.amend("c", order_id=bid, price=100.0)
    assert kinds(out) == ["replaced/new"] and fills(out) == []
    assert book.ladder()[0][0] == (100.0, 8)
    out = book.amend("c", order_id=bid, price=101.0)
    assert kinds(out)[0] == "replaced/new"
    assert [(t.price, t.qty, t.sell_account) for t in fills(out)] == [(101.0, 8, "a")]
    assert book.ladder()[1] == [(101.0, 7), (102.0, 20)]
    assert book.ladder()[0][0] == (99.0, 10)


def test_amend_below_filled_quantity_ends_the_order() -> None:
    d = Driver(make_exchange())
    ask = order_id(d.order("a", "sell", 10, 101.0))
    d.order("b", "buy", 6, 101.0)
    out = d.amend("a", order_id=ask, qty=5)
    assert kinds(out) == ["canceled/canceled"]
    report = reports(out)[0]
    assert (report.cum_qty, report.leaves_qty) == (6, 0)
    assert d.ladder()[1] == []
    again = d.amend("a", order_id=ask, qty=3)
    reject = [e for e in again if isinstance(e, CancelReject)][0]
    assert (reject.reject_reason, reject.status) == ("too_late", "canceled")


def test_fix_c3b_amend_to_exactly_the_filled_qty_is_a_filled_replace() -> None:
    """FIX 4.4 Appendix D, C.3.b: 10,000 ordered, 7,000 filled, amended to 7,000."""
    d = Driver(make_exchange(max_order_qty=20_000))
    oid = order_id(d.order("a", "buy", 10_000, 99.0, client_order_id="c3b"))
    d.order("b", "sell", 7_000, 99.0)
    before_ladder = d.ladder()
    assert before_ladder[0] == [(99.0, 3_000)]
    out = d.amend("a", order_id=oid, qty=7_000, req_id="r9")
    assert kinds(out) == ["replaced/filled"]
    report = reports(out)[0]
    assert (report.qty, report.cum_qty, report.leaves_qty) == (7_000, 7_000, 0)
    assert (report.avg_px, report.req_id, report.client_order_id) == (99.0, "r9", "c3b")
    assert d.ladder()[0] == []  # nothing of it rests
    assert d.ex.open_orders("a") == []
    again = d.cancel("a", order_id=oid)
    reject = [e for e in again if isinstance(e, CancelReject)][0]
    assert (reject.reject_reason, reject.status) == ("too_late", "filled")
    # The open-order exposure is gone with it: a's whole margin is the 7,000 position's.
    account = d.ex.account("a")
    assert account is not None
    holding = account.holdings["XYZ"]
    assert (holding.qty, holding.open_buy_qty, holding.open_buy_value) == (7_000, 0, 0)


def test_fix_sequence_part_fill_then_cancel() -> None:
    d = Driver(make_exchange())
    out = d.order("a", "sell", 10, 101.0, client_order_id="x1", req_id=5)
    assert reports(out)[0].req_id == 5
    oid = order_id(out)
    d.order("b", "buy", 4, 101.0)
    out = d.cancel("a", client_order_id="x1", req_id="r2")
    mine = [r for r in reports(d.events) if r.order_id == oid]
    assert [(r.exec_type, r.status, r.qty, r.cum_qty, r.leaves_qty) for r in mine] == [
        ("new", "new", 10, 0, 10),
        ("trade", "partially_filled", 10, 4, 6),
        ("canceled", "canceled", 10, 4, 0),
    ]
    assert [r.avg_px for r in mine] == [0.0, 101.0, 101.0]
    assert reports(out)[0].req_id == "r2"
    assert mine[1].req_id is None  # a later fill is not a reply


def test_fix_sequence_successive_amends() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 10, 99.0))
    d.amend("a", order_id=oid, qty=8)
    d.amend("a", order_id=oid, price=99.5)
    d.order("b", "sell", 3, 99.5)
    d.amend("a", order_id=oid, qty=12)
    mine = [r for r in reports(d.events) if r.order_id == oid]
    assert [(r.exec_type, r.price, r.qty, r.cum_qty, r.leaves_qty) for r in mine] == [
        ("new", 99.0, 10, 0, 10),
        ("replaced", 99.0, 8, 0, 8),
        ("replaced", 99.5, 8, 0, 8),
        ("trade", 99.5, 8, 3, 5),
        ("replaced", 99.5, 12, 3, 9),
    ]
    for r in mine:
        assert r.qty == r.cum_qty + r.leaves_qty


def test_cancel_unknown_and_someone_elses_order_look_the_same(book: Driver) -> None:
    ask = book.ex.open_orders("a")[0].order_id
    theirs = [e for e in book.cancel("b", order_id=ask) if isinstance(e, CancelReject)][0]
    unknown = [e for e in book.cancel("b", order_id=999_999) if isinstance(e, CancelReject)][0]
    assert (theirs.reject_reason, theirs.status) == ("unknown_order", None)
    assert (unknown.reject_reason, unknown.status) == ("unknown_order", None)
    assert theirs.text == unknown.text
    by_cid = [e for e in book.cancel("b", client_order_id="a-ask") if isinstance(e, CancelReject)]
    assert by_cid[0].reject_reason == "unknown_order"
    assert book.ex.open_orders("a")[0].order_id == ask  # untouched


def test_cancel_of_own_finished_order_is_too_late(book: Driver) -> None:
    ask = book.ex.open_orders("a")[0].order_id
    book.order("c", "buy", 10, 101.0)
    reject = [e for e in book.cancel("a", order_id=ask) if isinstance(e, CancelReject)][0]
    assert (reject.reject_reason, reject.status, reject.client_order_id) == (
        "too_late",
        "filled",
        "a-ask",
    )


def test_market_orders(book: Driver) -> None:
    out = book.order("c", "buy", 5)
    assert [(t.price, t.qty) for t in fills(out)] == [(101.0, 5)]
    first = reports(out)[0]
    assert first.price is None and first.order_type == "market" and first.tif == "ioc"
    out = book.order("c", "sell", 100)
    assert [r.exec_type for r in reports(out, "c")][-1] == "expired"
    assert reports(out, "c")[-1].reject_reason == "no_liquidity"
    assert book.ladder()[0] == []
    out = book.order("c", "sell", 1)
    assert kinds(out) == ["new/new", "expired/expired"]
    assert reports(out)[-1].reject_reason == "no_liquidity"
    bad = book.send(
        "c", NewOrder(symbol="XYZ", side="buy", qty=1, order_type="market", price=100.0)
    )
    assert isinstance(bad[0], Error) and bad[0].code == "invalid_message"


def test_post_only(book: Driver) -> None:
    out = book.order("c", "buy", 5, 101.0, post_only=True)
    assert kinds(out) == ["rejected/rejected"]
    assert reports(out)[0].reject_reason == "post_only_would_cross"
    assert reports(out)[0].order_id is None
    out = book.order("c", "buy", 5, 100.0, post_only=True)
    assert kinds(out) == ["new/new"]
    bid = order_id(out)
    reject = [e for e in book.amend("c", order_id=bid, price=101.0) if isinstance(e, CancelReject)]
    assert reject[0].reject_reason == "post_only_would_cross"
    assert book.ladder()[0][0] == (100.0, 5)


def test_self_trade_prevention_modes() -> None:
    d = Driver(make_exchange())
    own = order_id(d.order("a", "sell", 5, 101.0))
    other = order_id(d.order("b", "sell", 5, 101.0))
    out = d.order("a", "buy", 8, 101.0, stp="expire_taker")
    assert kinds(out) == ["new/new", "expired/expired"] and fills(out) == []
    out = d.order("a", "buy", 8, 101.0, stp="expire_maker")
    assert [r.order_id for r in reports(out) if r.exec_type == "canceled"] == [own]
    assert [(t.sell_order_id, t.qty) for t in fills(out)] == [(other, 5)]
    assert d.ladder() == ([(101.0, 3)], [])
    d.order("a", "sell", 5, 102.0)
    d.order("b", "sell", 5, 102.0)
    out = d.order("a", "buy", 8, 102.0, stp="expire_both")
    assert [r.exec_type for r in reports(out)] == ["new", "canceled", "expired"]
    assert fills(out) == [] and d.ladder()[1] == [(102.0, 5)]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"symbol": "NOPE"}, "unknown_symbol"),
        ({"price": 100.005}, "invalid_price"),
        ({"price": -1.0}, "invalid_price"),
        ({"price": None, "order_type": "limit"}, "invalid_price"),
        ({"qty": 0}, "invalid_qty"),
        ({"qty": -3}, "invalid_qty"),
        ({"price": 200.0}, "price_band"),
        ({"qty": 10_001}, "max_order_qty"),
    ],
)
def test_pre_trade_rejects_change_nothing(book: Driver, kwargs: dict, reason: str) -> None:
    before = _state_without_clock(book)
    fields = {"symbol": "XYZ", "side": "buy", "qty": 5, "price": 100.0, "req_id": 9}
    fields.update(kwargs)
    out = book.send("a", NewOrder(**fields))
    assert len(out) == 1 and isinstance(out[0], ExecutionReport)
    assert (out[0].exec_type, out[0].reject_reason, out[0].req_id) == ("rejected", reason, 9)
    assert out[0].order_id is None
    assert _state_without_clock(book) == before  # a reject only consumes a seq


def _state_without_clock(driver: Driver) -> object:
    return msgspec.structs.replace(capture(driver.ex), seq=0, ts=0)


def test_limits_max_position_open_orders_duplicate_cid() -> None:
    d = Driver(make_exchange(max_position=20))
    d.order("a", "buy", 15, 99.0, client_order_id="dup")
    out = d.order("a", "buy", 6, 98.0)
    assert reports(out)[0].reject_reason == "max_position"
    out = d.order("a", "sell", 30, 103.0)
    assert reports(out)[0].reject_reason == "max_position"
    out = d.order("a", "buy", 1, 98.0, client_order_id="dup")
    assert reports(out)[0].reject_reason == "duplicate_client_order_id"


def test_max_open_orders_counts_only_orders_that_rest() -> None:
    d = Driver(make_exchange())
    for _ in range(50):
        d.order("b", "sell", 1, 110.0)
    out = d.order("b", "sell", 1, 110.0)
    assert reports(out)[0].reject_reason == "max_open_orders"
    out = d.order("b", "buy", 1, 99.0, tif="ioc")  # never rests: not limited
    assert reports(out)[0].exec_type == "new"


def test_cancel_all_per_symbol_and_everything(book: Driver) -> None:
    out = book.send("a", CancelAll(symbol="XYZ", req_id=1))
    canceled = [r for r in reports(out) if r.exec_type == "canceled"]
    assert len(canceled) == 2 and all(r.req_id == 1 for r in canceled)
    done = [e for e in out if isinstance(e, CancelAllDone)][0]
    assert (done.canceled, done.req_id) == (2, 1)
    assert book.ladder() == ([(98.0, 5)], [(101.0, 5), (102.0, 20)])
    out = book.send("a", CancelAll())
    assert [e for e in out if isinstance(e, CancelAllDone)][0].canceled == 0


def test_book_delta_and_bbo_events(book: Driver) -> None:
    out = book.order("c", "buy", 12, 101.0)
    deltas = [e for e in out if isinstance(e, BookDelta)]
    assert len(deltas) == 1
    assert deltas[0].asks == [(101.0, 3)] and deltas[0].bids == []
    bbo = [e for e in out if isinstance(e, Bbo)][0]
    assert (bbo.bid, bbo.bid_qty, bbo.ask, bbo.ask_qty) == (99.0, 10, 101.0, 3)
    # A change behind the top publishes a delta but no bbo.
    out = book.order("c", "buy", 1, 97.0)
    assert [type(e).__name__ for e in out] == ["ExecutionReport", "BookDelta"]


def test_seq_is_gapless_and_every_event_has_the_input_ts(book: Driver) -> None:
    book.order("c", "buy", 30, 102.0, stp="expire_maker")
    book.cancel("a", order_id=999)
    seqs = [e.seq for e in book.events if not isinstance(e, Error)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert book.ex.last_seq == seqs[-1]
