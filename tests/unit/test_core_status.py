"""Trading status in the core (PROTOCOL §3.2): halts, call auctions and their uncross (hand-
computed cases), scheduled reopens, stops at the uncross price, circuit breakers.

Every command goes through the scenario ``Driver`` (invariants after each one; a book may
cross only while it is in auction or halted)."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.core import Exchange
from exchange.core.status import indicative
from exchange.protocol.config import CircuitBreaker
from exchange.protocol.messages import (
    AdvanceTime,
    AuctionInfo,
    CancelOrder,
    Error,
    Fill,
    MarketStatus,
    SetStatus,
)
from tests.unit.core_helpers import SYMBOL, Driver, fills, make_exchange, order_id, reports

S = 1_000_000_000


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def status(d: Driver, state: str, **fields: Any) -> list[Any]:
    return d.send("", SetStatus(symbol=SYMBOL, status=state, **fields))  # type: ignore[arg-type]


def at(d: Driver, ts: int) -> list[Any]:
    """An ``AdvanceTime`` at ``ts`` (the Driver's clock jumps there)."""
    d.ts = ts - 1
    return d.send("", AdvanceTime())


def test_a_halt_refuses_new_orders_but_cancels_work() -> None:
    d = Driver(make_exchange())
    resting = order_id(d.order("a", "buy", 5, 99.0))
    out = status(d, "halted", req_id="h")
    (change,) = of(out, MarketStatus)
    assert (change.status, change.reason, change.until, change.req_id) == (
        "halted",
        "admin",
        None,
        "h",
    )
    assert d.ex.instruments()[0].status == "halted"
    refused = reports(d.order("b", "sell", 5, 99.0))[0]
    assert (refused.exec_type, refused.reject_reason) == ("rejected", "market_halted")
    assert reports(d.cancel("a", order_id=resting))[0].exec_type == "canceled"
    assert of(status(d, "open"), MarketStatus)[0].status == "open"
    assert reports(d.order("b", "sell", 5, 99.0))[0].exec_type == "new"


def test_an_auction_collects_crossing_orders_and_uncrosses_at_open() -> None:
    d = Driver(make_exchange({"a": 1e7, "b": 1e7, "c": 1e7}, maker_fee=0.0001, taker_fee=0.0003))
    status(d, "auction")
    d.order("a", "buy", 10, 101.0)
    d.order("a", "buy", 10, 100.0)
    d.order("b", "sell", 5, 99.0)
    out = d.order("c", "sell", 10, 100.0)
    assert not fills(out)  # nothing trades in an auction
    info = of(out, AuctionInfo)
    assert info == [] or (info[-1].indicative_price, info[-1].indicative_qty) == (100.0, 15)
    refused = reports(d.order("c", "sell", 1, 90.0, tif="ioc"))[0]
    assert refused.reject_reason == "market_halted"
    assert reports(d.order("c", "sell", 1))[0].reject_reason == "market_halted"  # market
    out = status(d, "open")
    trades = fills(out)
    assert {f.price for f in trades} == {100.0} and sum(f.qty for f in trades) == 15
    assert all(f.aggressor == "auction" for f in trades)
    assert all(r.liquidity == "maker" for r in reports(out) if r.exec_type == "trade")
    # Price-time on both sides: the bid at 101 meets the ask at 99 then the one at 100.
    assert [(f.buy_account, f.sell_account, f.qty) for f in trades] == [
        ("a", "b", 5),
        ("a", "c", 5),
        ("a", "c", 5),
    ]
    kinds = [type(e).__name__ for e in out]
    assert kinds.index("MarketStatus") > kinds.index("Fill")
    bids, asks = d.ladder()
    assert bids == [(100.0, 5)] and asks == []
    fee = trades[0].buy_fee
    assert fee == trades[0].sell_fee > 0  # both sides pay the maker fee


@pytest.mark.parametrize(
    ("bids", "asks", "expected"),
    [
        # most quantity: 15 at 100 (99 gives 5, 101 gives 10)
        ([(10, 101.0), (10, 100.0)], [(5, 99.0), (10, 100.0)], (100.0, 15, 5)),
        # quantity tied at 99 and 101 (10 each, no imbalance), equally far from the
        # reference 100: the lower
        ([(10, 101.0)], [(10, 99.0)], (99.0, 10, 0)),
        # least imbalance among equal quantities: 101 and 102 trade 10 with none left; 101
        # is nearer the reference
        ([(10, 102.0)], [(4, 100.0), (6, 101.0)], (101.0, 10, 0)),
        # quantity first, imbalance second: 12 at 100 (3 bought too many) beats 10 at 101
        ([(10, 101.0), (5, 100.0)], [(12, 100.0)], (100.0, 12, 3)),
        # nothing crosses
        ([(10, 99.0)], [(10, 100.0)], (None, 0, 0)),
    ],
)
def test_the_uncross_price_rule(
    bids: list[tuple[int, float]],
    asks: list[tuple[int, float]],
    expected: tuple[float | None, int, int],
) -> None:
    d = Driver(make_exchange())
    status(d, "auction")
    for qty, price in bids:
        d.order("a", "buy", qty, price)
    for qty, price in asks:
        d.order("b", "sell", qty, price)
    book = d.ex.book(SYMBOL)
    assert book is not None
    ticks, qty, imbalance = indicative(book)
    price = book.instrument.to_price(ticks) if qty else None
    assert (price, qty, imbalance) == expected


def test_a_timed_halt_reopens_through_an_auction_by_the_clock() -> None:
    d = Driver(make_exchange())
    start = d.ts
    status(d, "halted", until=start + 10 * S, auction_s=5.0)
    assert d.ex.next_deadline() == start + 10 * S
    d.order("a", "buy", 3, 100.0)  # refused: halted
    out = at(d, start + 10 * S)
    (change,) = of(out, MarketStatus)
    assert (change.status, change.reason, change.until) == ("auction", "schedule", start + 15 * S)
    d.order("a", "buy", 3, 101.0)
    d.order("b", "sell", 3, 100.0)
    assert not of(at(d, start + 14 * S), MarketStatus)  # not yet
    out = at(d, start + 15 * S)
    assert [f.price for f in fills(out)] == [100.0]  # 3 at 100 or 101: nearer the reference
    assert of(out, MarketStatus)[0].status == "open"


def test_stops_fire_at_the_uncross_price_after_the_open() -> None:
    d = Driver(make_exchange())
    d.order("c", "buy", 10, 90.0)  # liquidity for the stop
    stop = order_id(d.order("b", "sell", 2, order_type="stop", trigger_price=97.0))
    status(d, "auction")
    d.order("a", "buy", 5, 96.0)
    d.order("c", "sell", 5, 95.0)
    out = status(d, "open")
    kinds = [type(e).__name__ for e in out]
    opened = kinds.index("MarketStatus")
    fired = [i for i, e in enumerate(out) if getattr(e, "exec_type", "") == "triggered"]
    assert fired and fired[0] > opened
    assert [r.order_id for r in reports(out) if r.exec_type == "triggered"] == [stop]


def test_a_circuit_breaker_halts_then_reopens_through_an_auction() -> None:
    breaker = CircuitBreaker(move=0.05, window_s=60.0, halt_s=30.0, auction_s=10.0)
    d = Driver(make_exchange(circuit_breaker=breaker))
    d.order("a", "sell", 1, 100.0)
    d.order("b", "buy", 1, 100.0)
    d.order("a", "sell", 1, 104.0)
    out = d.order("b", "buy", 1, 104.0)  # +4%: fine
    assert not of(out, MarketStatus)
    d.order("a", "sell", 1, 105.5)
    out = d.order("b", "buy", 1, 105.5)  # +5.5% from the window's low 100: halt
    assert [f.price for f in fills(out)] == [105.5]
    (change,) = of(out, MarketStatus)
    assert (change.status, change.reason, change.until) == (
        "halted",
        "circuit_breaker",
        d.ts + 30 * S,
    )
    assert reports(d.order("b", "buy", 1, 105.0))[0].reject_reason == "market_halted"
    out = at(d, change.until)
    assert of(out, MarketStatus)[0].status == "auction"
    assert of(out, MarketStatus)[0].reason == "circuit_breaker"
    out = at(d, change.until + 10 * S)
    assert of(out, MarketStatus)[0].status == "open"


def test_set_status_checks_its_symbol_and_time() -> None:
    d = Driver(make_exchange())
    seq = d.ex.last_seq
    assert of(d.send("", SetStatus(symbol="NOPE", status="halted")), Error)
    assert of(status(d, "halted", until=1), Error)  # not in the future
    assert d.ex.last_seq == seq
    out = d.send("", SetStatus(symbol="*", status="auction", auction_s=2.0))
    assert [m.status for m in of(out, MarketStatus)] == ["auction"]
    assert of(out, AuctionInfo)[0].ends_at == d.ts + 2 * S


def test_an_auction_book_survives_a_snapshot() -> None:
    d = Driver(make_exchange())
    status(d, "auction", auction_s=30.0)
    d.order("a", "buy", 4, 101.0)
    d.order("b", "sell", 4, 99.0)
    restored = Exchange.restore(d.ex.config, d.ex.snapshot())
    assert restored.state_hash() == d.ex.state_hash()
    assert restored.instruments()[0].status == "auction"
    again = Driver(restored)
    again.ts = d.ts
    out = at(again, d.ts + 30 * S)
    assert sum(f.qty for f in of(out, Fill)) == 4


def test_amends_and_cancels_in_an_auction_never_trade() -> None:
    d = Driver(make_exchange())
    status(d, "auction")
    bid = order_id(d.order("a", "buy", 4, 99.0))
    d.order("b", "sell", 4, 100.0)
    out = d.amend("a", order_id=bid, price=100.5)  # crosses now: rests anyway
    assert not fills(out) and reports(out)[0].exec_type == "replaced"
    assert reports(d.send("a", CancelOrder(order_id=bid)))[0].exec_type == "canceled"


def test_a_circuit_breaker_tripped_mid_sweep_halts_after_the_sweep() -> None:
    """A buy sweeps 101, 104 and 108: the print at 108 is 8% above the window's low (100),
    past the 5% move; the order still completes, then the symbol halts."""
    breaker = CircuitBreaker(move=0.05, window_s=60.0, halt_s=30.0, auction_s=0.0)
    d = Driver(make_exchange(circuit_breaker=breaker))
    d.order("a", "sell", 1, 100.0)
    d.order("b", "buy", 1, 100.0)
    for price in (101.0, 104.0, 108.0):
        d.order("a", "sell", 2, price)
    out = d.order("b", "buy", 6, 108.0)
    assert [(f.price, f.qty) for f in fills(out)] == [(101.0, 2), (104.0, 2), (108.0, 2)]
    kinds = [type(e).__name__ for e in out]
    assert kinds.index("MarketStatus") > max(i for i, k in enumerate(kinds) if k == "Fill")
    (change,) = of(out, MarketStatus)
    assert (change.status, change.reason) == ("halted", "circuit_breaker")
    out = at(d, change.until)  # auction_s 0: straight back to open
    assert [m.status for m in of(out, MarketStatus)] == ["open"]
