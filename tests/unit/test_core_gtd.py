"""GTD orders (``tif`` ``gtd`` + ``expire_at``) and time as a command (``AdvanceTime``)."""

from __future__ import annotations

from typing import Any

from exchange.core import Exchange
from exchange.protocol.messages import AdvanceTime, CancelAll, ExecutionReport
from tests.unit.core_helpers import Driver, kinds, make_exchange, order_id, reports

T = 1_000_000  # the Driver's ts start at 1_001


def rejected(out: list[Any]) -> ExecutionReport:
    (report,) = reports(out)
    assert (report.exec_type, report.status) == ("rejected", "rejected")
    return report


def advance(d: Driver, ts: int) -> list[Any]:
    """``AdvanceTime`` at input time exactly ``ts`` (the Driver's clock jumps there)."""
    d.ts = ts - 1
    return d.send("", AdvanceTime())


def test_gtd_needs_expire_at_in_the_future_and_a_limit_price() -> None:
    d = Driver(make_exchange())
    report = rejected(d.order("a", "buy", 1, 99.0, tif="gtd"))
    assert report.reject_reason == "invalid_order"
    report = rejected(d.order("a", "buy", 1, 99.0, tif="gtd", expire_at=d.ts))
    assert report.reject_reason == "invalid_order"
    assert report.expire_at == d.ts - 1  # echoed as sent
    assert rejected(d.order("a", "buy", 1, tif="gtd", expire_at=T)).reject_reason == (
        "invalid_order"
    )
    assert rejected(d.order("a", "buy", 1, 99.0, expire_at=T)).reject_reason == "invalid_order"
    assert rejected(d.order("a", "buy", 1, 99.0, tif="ioc", expire_at=T)).reject_reason == (
        "invalid_order"
    )
    assert d.ex.next_deadline() is None
    assert d.ex.open_orders("a") == []


def test_gtd_rests_and_expires_at_exactly_expire_at_not_before() -> None:
    d = Driver(make_exchange())
    out = d.order("a", "buy", 5, 99.0, tif="gtd", expire_at=T, client_order_id="g1")
    assert kinds(out) == ["new/new"]
    assert reports(out)[0].expire_at == T and reports(out)[0].tif == "gtd"
    oid = order_id(out)
    assert d.ex.next_deadline() == T
    (info,) = d.ex.open_orders("a")
    assert info.expire_at == T and info.tif == "gtd"
    assert advance(d, T - 1) == []
    assert d.ex.open_orders("a") != []
    out = advance(d, T)
    (report,) = reports(out)
    assert (report.exec_type, report.status, report.reject_reason) == (
        "expired",
        "expired",
        "gtd_expired",
    )
    assert report.order_id == oid and report.leaves_qty == 0 and report.expire_at == T
    assert report.ts == T
    assert d.ladder() == ([], [])
    assert d.ex.open_orders("a") == []
    assert d.ex.next_deadline() is None
    holding = d.ex.account("a").holdings["XYZ"]  # type: ignore[union-attr]
    assert holding.open_buy_qty == 0 and holding.open_buy_value == 0
    out = d.cancel("a", order_id=oid)
    assert out[0].reject_reason == "too_late" and out[0].status == "expired"


def test_partial_fill_then_expiry_of_what_is_left() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "sell", 10, 101.0, tif="gtd", expire_at=T))
    out = d.order("b", "buy", 4, 101.0, tif="ioc")
    assert [r.exec_type for r in reports(out, "a")] == ["trade"]
    assert reports(out, "a")[0].expire_at == T
    out = advance(d, T + 5)
    (report,) = reports(out)
    assert report.order_id == oid
    assert (report.status, report.cum_qty, report.leaves_qty, report.qty) == ("expired", 4, 0, 10)
    assert d.ladder() == ([], [])


def test_gtd_that_crosses_trades_then_rests_with_its_deadline() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 2, 100.0)
    out = d.order("a", "buy", 5, 100.0, tif="gtd", expire_at=T)
    assert kinds(out)[:2] == ["new/new", "trade/partially_filled"]
    assert d.ladder()[0] == [(100.0, 3)]
    assert kinds(advance(d, T)) == ["expired/expired"]


def test_fully_filled_gtd_leaves_no_deadline() -> None:
    d = Driver(make_exchange())
    d.order("b", "sell", 2, 100.0)
    d.order("a", "buy", 2, 100.0, tif="gtd", expire_at=T)
    assert d.ex.next_deadline() is None
    assert reports(advance(d, T)) == []


def test_post_only_gtd_is_allowed() -> None:
    d = Driver(make_exchange())
    out = d.order("a", "buy", 1, 99.0, tif="gtd", expire_at=T, post_only=True)
    assert kinds(out) == ["new/new"]
    assert reports(out)[0].post_only


def test_amend_keeps_expire_at() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 5, 99.0, tif="gtd", expire_at=T))
    out = d.amend("a", order_id=oid, price=99.5, qty=7)
    (report,) = reports(out)
    assert report.exec_type == "replaced" and report.expire_at == T and report.tif == "gtd"
    out = d.amend("a", order_id=oid, qty=3)
    assert reports(out)[0].expire_at == T
    assert d.ex.next_deadline() == T
    (report,) = reports(advance(d, T))
    assert (report.order_id, report.reject_reason, report.qty) == (oid, "gtd_expired", 3)
    assert d.ladder() == ([], [])


def test_cancel_before_expiry() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 5, 99.0, tif="gtd", expire_at=T))
    out = d.cancel("a", order_id=oid)
    assert kinds(out) == ["canceled/canceled"] and reports(out)[0].expire_at == T
    assert d.ex.next_deadline() is None
    assert reports(advance(d, T)) == []


def test_cancel_all_then_later_orders_still_expire() -> None:
    d = Driver(make_exchange())
    d.order("a", "buy", 5, 99.0, tif="gtd", expire_at=T)
    d.send("a", CancelAll())
    oid = order_id(d.order("a", "buy", 5, 99.0, tif="gtd", expire_at=T + 10))
    assert d.ex.next_deadline() == T + 10
    (report,) = reports(advance(d, T + 10))
    assert report.order_id == oid


def test_expiry_order_is_by_deadline_then_order_id() -> None:
    d = Driver(make_exchange())
    late = order_id(d.order("a", "buy", 1, 99.0, tif="gtd", expire_at=T + 1))
    first = order_id(d.order("b", "sell", 1, 101.0, tif="gtd", expire_at=T))
    second = order_id(d.order("a", "buy", 1, 98.0, tif="gtd", expire_at=T))
    third = order_id(d.order("c", "sell", 1, 102.0, tif="gtd", expire_at=T))
    out = advance(d, T + 1)
    assert [r.order_id for r in reports(out)] == [first, second, third, late]
    seqs = [r.seq for r in reports(out)]
    assert seqs == sorted(seqs)


def test_snapshot_restore_keeps_the_deadline_and_still_expires() -> None:
    d = Driver(make_exchange())
    oid = order_id(d.order("a", "buy", 5, 99.0, tif="gtd", expire_at=T))
    d.order("b", "sell", 5, 101.0)
    before = d.ex.state_hash()
    restored = Exchange.restore(d.ex.config, d.ex.snapshot())
    assert restored.state_hash() == before
    assert restored.next_deadline() == T
    (info,) = restored.open_orders("a")
    assert info.expire_at == T
    d2 = Driver(restored)
    d2.ts = d.ts
    out_restored = advance(d2, T)
    out_original = advance(d, T)
    assert out_restored == out_original
    assert [r.order_id for r in reports(out_restored)] == [oid]
    assert restored.state_hash() == d.ex.state_hash()


def test_an_older_snapshot_version_is_refused() -> None:
    import msgspec

    from exchange.core.state import decode

    d = Driver(make_exchange())
    d.order("a", "buy", 5, 99.0)
    raw = msgspec.msgpack.decode(d.ex.snapshot())
    raw[0] = 1
    try:
        decode(msgspec.msgpack.encode(raw))
    except ValueError as exc:
        assert "version" in str(exc)
    else:
        raise AssertionError("a version 1 snapshot was accepted")


def test_the_deadline_heap_stays_proportional_to_live_gtd_orders() -> None:
    """Placing and cancelling far-off GTD orders leaves stale heap entries that compaction
    drops: the heap never holds more than about twice the live GTD orders (at least 1,024)."""
    d = Driver(make_exchange())
    expire_at = d.ts + 10**15
    for _ in range(3_000):
        oid = order_id(d.order("a", "buy", 1, 99.0, tif="gtd", expire_at=expire_at))
        d.cancel("a", order_id=oid)
    assert len(d.ex.venue.deadlines) <= 1_024
    live = order_id(d.order("a", "buy", 1, 99.0, tif="gtd", expire_at=expire_at))
    assert d.ex.next_deadline() == expire_at and live in [o for _, o, _ in d.ex.venue.deadlines]
