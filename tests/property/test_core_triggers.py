"""Random streams of conditional, scheduled and reduce-only orders among ordinary ones keep every
invariant of the core (the Driver checks ``invariants.violations`` after each command, which
includes the trigger books against the live orders), and a snapshot taken at any point
restores to the same state and goes on identically."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core import Exchange
from exchange.protocol.messages import (
    AdvanceTime,
    AmendOrder,
    CancelOrder,
    Fill,
    MarketStatus,
    NewOrder,
    SetStatus,
)
from tests.unit.core_helpers import SYMBOL, Driver, make_exchange

ACCOUNTS = ("a", "b", "c")
prices = st.integers(min_value=9_500, max_value=10_500).map(lambda t: t / 100)
qtys = st.integers(min_value=1, max_value=8)
sides = st.sampled_from(("buy", "sell"))
reduce_only = st.sampled_from((False, False, False, True))

plain = st.builds(
    lambda side, qty, price, tif, reduce_only, display: NewOrder(
        symbol=SYMBOL,
        side=side,
        qty=qty,
        price=price,
        tif=tif,
        reduce_only=reduce_only,
        display_qty=display if tif == "gtc" else None,  # icebergs among the resting orders
    ),
    sides,
    qtys,
    prices,
    st.sampled_from(("gtc", "gtc", "ioc")),
    reduce_only,
    st.sampled_from((None, None, None, 1, 3)),
)
market = st.builds(
    lambda side, qty, reduce_only: NewOrder(
        symbol=SYMBOL, side=side, qty=qty, order_type="market", reduce_only=reduce_only
    ),
    sides,
    qtys,
    reduce_only,
)
conditional = st.builds(
    lambda side, qty, kind, trigger, price, reduce_only: NewOrder(
        symbol=SYMBOL,
        side=side,
        qty=qty,
        order_type=kind,
        trigger_price=trigger,
        price=price if kind.endswith("_limit") else None,
        reduce_only=reduce_only,
    ),
    sides,
    qtys,
    st.sampled_from(("stop", "stop_limit", "take_profit", "take_profit_limit")),
    prices,
    prices,
    reduce_only,
)
scheduled = st.builds(
    lambda side, qty, price, delay: (side, qty, price, delay),
    sides,
    qtys,
    prices,
    st.integers(min_value=1, max_value=50),
)

status_step = st.tuples(
    st.just("status"),
    st.just(""),
    st.tuples(
        st.sampled_from(("halted", "auction", "auction", "open")),
        st.sampled_from((None, 10, 40)),  # ns until it ends by itself
    ),
)

step = st.one_of(
    st.tuples(st.just("plain"), st.sampled_from(ACCOUNTS), plain),
    st.tuples(st.just("plain"), st.sampled_from(ACCOUNTS), plain),
    st.tuples(st.just("plain"), st.sampled_from(ACCOUNTS), plain),
    st.tuples(st.just("market"), st.sampled_from(ACCOUNTS), market),
    st.tuples(st.just("conditional"), st.sampled_from(ACCOUNTS), conditional),
    st.tuples(st.just("scheduled"), st.sampled_from(ACCOUNTS), scheduled),
    st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(0, 40)),
    st.tuples(
        st.just("amend"),
        st.sampled_from(ACCOUNTS),
        st.tuples(st.integers(0, 40), prices, st.sampled_from((None, 1, 5))),
    ),
    st.tuples(st.just("time"), st.just(""), st.integers(min_value=1, max_value=30)),
    status_step,
    status_step,
    status_step,
)


def apply(d: Driver, kind: str, account: str, arg: Any) -> None:
    if kind in ("plain", "market", "conditional"):
        d.send(account, arg)
    elif kind == "scheduled":
        side, qty, price, delay = arg
        d.send(
            account,
            NewOrder(symbol=SYMBOL, side=side, qty=qty, price=price, activate_at=d.ts + delay),
        )
    elif kind == "cancel":
        d.send(account, CancelOrder(order_id=_pick(d, account, arg)))
    elif kind == "amend":
        index, price, qty = arg
        order_id = _pick(d, account, index)
        d.send(account, AmendOrder(order_id=order_id, trigger_price=price, qty=qty))
    elif kind == "status":
        state, length = arg
        if state == "halted":
            until = d.ts + 1 + length if length else None
            d.send("", SetStatus(symbol=SYMBOL, status="halted", until=until, auction_s=0.0))
        elif state == "auction":
            auction_s = length / 1e9 if length else None
            d.send("", SetStatus(symbol=SYMBOL, status="auction", auction_s=auction_s))
        else:
            d.send("", SetStatus(symbol=SYMBOL, status="open"))
    else:
        d.ts += arg
        d.send("", AdvanceTime())


def assert_traded_only_when_open(events: list[Any]) -> None:
    """Nothing trades while halted or in auction: the events of a command that began so hold
    only the uncross (aggressor ``auction``) before its ``market_status`` open, and trades
    after it."""
    opened = next(
        (i for i, e in enumerate(events) if isinstance(e, MarketStatus) and e.status == "open"),
        None,
    )
    for i, event in enumerate(events):
        if isinstance(event, Fill):
            assert opened is not None, events
            assert i > opened or event.aggressor == "auction", event


def _pick(d: Driver, account: str, index: int) -> int:
    """The id of one of ``account``'s live orders (chosen by ``index``), else a missing id."""
    live = d.ex.open_orders(account)
    return live[index % len(live)].order_id if live else 10**6


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=60), st.integers(min_value=0, max_value=60))
def test_random_streams_keep_invariants_and_restore_exactly(
    steps: list[tuple[str, str, Any]], cut: int
) -> None:
    d = Driver(make_exchange(price_band=0.1))
    restored: Driver | None = None
    for number, (kind, account, arg) in enumerate(steps):
        if number == cut:
            restored = Driver(Exchange.restore(d.ex.config, d.ex.snapshot()))
            restored.ts = d.ts
            assert restored.ex.state_hash() == d.ex.state_hash()
        before = len(d.events)
        state = d.ex.book(SYMBOL).state  # type: ignore[union-attr]
        apply(d, kind, account, arg)
        if state != "open":
            assert_traded_only_when_open(d.events[before:])
        if restored is not None:
            mark = len(restored.events)
            apply(restored, kind, account, arg)
            assert restored.events[mark:] == d.events[before:]
    if restored is not None:
        assert restored.ex.state_hash() == d.ex.state_hash()
    for name in ACCOUNTS:
        holding = d.ex.account(name).holdings.get(SYMBOL)  # type: ignore[union-attr]
        for info in d.ex.open_orders(name):
            if info.reduce_only and holding is not None:
                assert info.leaves_qty <= abs(holding.qty)


auction_step = st.one_of(
    st.tuples(st.just("plain"), st.sampled_from(ACCOUNTS), plain),
    st.tuples(st.just("plain"), st.sampled_from(ACCOUNTS), plain),
    st.tuples(st.just("conditional"), st.sampled_from(ACCOUNTS), conditional),
    st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(0, 40)),
    st.tuples(st.just("time"), st.just(""), st.integers(min_value=1, max_value=30)),
    status_step,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(auction_step, min_size=1, max_size=60).map(
        lambda steps: [("status", "", ("auction", None)), *steps, ("status", "", ("open", None))]
    )
)
def test_auctions_and_halts_keep_invariants_and_trade_only_when_open(
    steps: list[tuple[str, str, Any]],
) -> None:
    """Streams that start with an auction and end with an open, icebergs and stops among
    the orders: the invariants hold after every command (the Driver), nothing trades but the
    uncross while the book is not open, and the book is uncrossed once open."""
    d = Driver(make_exchange(price_band=0.1))
    for kind, account, arg in steps:
        before = len(d.events)
        state = d.ex.book(SYMBOL).state  # type: ignore[union-attr]
        apply(d, kind, account, arg)
        if state != "open":
            assert_traded_only_when_open(d.events[before:])
    book = d.ex.book(SYMBOL)
    assert book is not None and book.state == "open"
    assert not (book.best_bid and book.best_ask and book.best_bid >= book.best_ask)
