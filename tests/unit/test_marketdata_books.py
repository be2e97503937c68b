"""Pure relay logic: L2 books, depth views, channel names, the feed's fan-out decisions."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from exchange.protocol.internal import BookState, EngineSnapshot
from exchange.protocol.messages import (
    AccountUpdate,
    BookDelta,
    ExecutionReport,
    Fill,
    InstrumentInfo,
    Subscribe,
    Unsubscribe,
)
from marketdata.books import DepthView, L2Book
from marketdata.channels import Session, parse, unknown_names
from marketdata.feed import MarketFeed

SYMBOLS = ["AAA", "BBB"]


def instrument(symbol: str) -> InstrumentInfo:
    return InstrumentInfo(symbol, 0.5, 1.0, 100.0, 0.1, 0.05, 1000, 10000, 0.1, 0.0, 0.0)


def apply_levels(view: dict[float, int], levels: list[Any]) -> None:
    for price, qty in levels:
        if qty:
            view[price] = qty
        else:
            assert price in view, "a removal of a level the subscriber never had"
            del view[price]


@pytest.mark.parametrize("depth", [1, 2, 5, 40])
@pytest.mark.parametrize("seed", range(5))
def test_depth_view_updates_keep_a_subscriber_exactly_on_the_top_levels(
    depth: int, seed: int
) -> None:
    rng = random.Random(seed)
    book = L2Book("AAA", 0, 0)
    view = DepthView(book, depth)
    shown_bids: dict[float, int] = {}
    shown_asks: dict[float, int] = {}
    for seq in range(1, 600):
        # Random changes to a few levels of each side, inside and outside the view.
        bids = {
            float(rng.randint(80, 100)): rng.choice([0, 0, 1, 5, 9])
            for _ in range(rng.randint(0, 3))
        }
        asks = {
            float(rng.randint(101, 121)): rng.choice([0, 0, 1, 5, 9])
            for _ in range(rng.randint(0, 3))
        }
        bid_levels = sorted(bids.items(), reverse=True)
        ask_levels = sorted(asks.items())
        bid_changes, ask_changes = book.apply(bid_levels, ask_levels, seq, seq * 10)
        prev = view.seq
        changes = view.advance(book, bid_changes, ask_changes)
        top_bids, top_asks = book.top(depth)
        if changes is None:
            assert view.seq == prev
        else:
            assert view.seq == seq
            assert changes[0] == sorted(changes[0], reverse=True)  # best first
            assert changes[1] == sorted(changes[1])
            apply_levels(shown_bids, changes[0])
            apply_levels(shown_asks, changes[1])
        assert sorted(shown_bids.items(), reverse=True) == top_bids
        assert sorted(shown_asks.items()) == top_asks


def test_book_top_best_and_snapshot_levels() -> None:
    book = L2Book.from_levels("AAA", [(99.5, 2), (99.0, 1)], [(100.5, 3), (101.0, 4)], 7, 70)
    assert book.top(1) == ([(99.5, 2)], [(100.5, 3)])
    assert book.top(None) == ([(99.5, 2), (99.0, 1)], [(100.5, 3), (101.0, 4)])
    assert book.best() == (99.5, 2, 100.5, 3)
    assert L2Book("X", 0, 0).best() == (None, 0, None, 0)


def test_channel_names() -> None:
    assert parse("book.AAA", SYMBOLS) == ("book", "AAA")
    assert parse("trades.*", SYMBOLS) == ("trades", "*")
    assert parse("liquidations", SYMBOLS) == ("liquidations", None)
    for bad in ("book", "book.", "book.ZZZ", "quotes.AAA", "accounts.AAA", "*", ""):
        assert parse(bad, SYMBOLS) is None, bad
    assert unknown_names(["bbo.AAA", "nope"], SYMBOLS) == ["nope"]


def test_session_keeps_names_apart_from_wildcards() -> None:
    session = Session()
    assert session.subscribe(["trades.*", "trades.AAA"], SYMBOLS, 10) == [
        ("trades", "AAA"),
        ("trades", "BBB"),
    ]
    assert session.unsubscribe(["trades.*"], SYMBOLS) == [("trades", "BBB")]
    assert session.channels == {("trades", "AAA")}
    added, removed = session.refresh(["AAA"])
    assert (added, removed) == ([], [])


def feed_with_book() -> MarketFeed[str]:
    feed: MarketFeed[str] = MarketFeed([instrument(s) for s in SYMBOLS], ["tok"], 3)
    snapshot = EngineSnapshot(
        5,
        50,
        [instrument(s) for s in SYMBOLS],
        [BookState("AAA", [(99.0, 1)], [(101.0, 2)])],
        [],
    )
    feed.apply_snapshot(snapshot)
    return feed


def decoded(outgoing: list[Any]) -> list[tuple[set[str], dict[str, Any]]]:
    return [(set(audience), msgspec.json.decode(frame)) for audience, frame, _kind in outgoing]


def test_feed_drops_private_events_and_strips_fills() -> None:
    feed = feed_with_book()
    feed.connect("c1")
    feed.handle("c1", Subscribe(channels=["trades.*", "book.AAA"], depth=1), 0)
    fill = Fill("AAA", 1, 101.0, 2, "buy", "x", "y", 10, 11, 0.1, 0.2, False, 60, 6)
    report = ExecutionReport(
        "trade", "filled", 11, None, "x", "AAA", "buy", "limit", "gtc", 101.0, 2, 2, 0, 101.0
    )
    delta = BookDelta("AAA", [], [(101.0, 0)], 60, 7)
    account = AccountUpdate("x", 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, [], ts=60, seq=8)
    out = decoded(feed.apply_events([report, fill, delta, account]))
    assert out == [
        (
            {"c1"},
            {
                "type": "trade",
                "symbol": "AAA",
                "trade_id": 1,
                "price": 101.0,
                "qty": 2,
                "aggressor": "buy",
                "ts": 60,
                "seq": 6,
            },
        ),
        (
            {"c1"},
            {
                "type": "book_update",
                "symbol": "AAA",
                "seq": 7,
                "prev_seq": 5,
                "ts": 60,
                "bids": [],
                "asks": [[101.0, 0]],
            },
        ),
    ]
    assert feed.last_seq == 8 and feed.accounts["x"] == account


def test_feed_subscription_replies_and_resync() -> None:
    feed = feed_with_book()
    feed.connect("c1")
    feed.connect("c2")
    out = decoded(feed.handle("c1", Subscribe(channels=["book.*", "bbo.AAA"], req_id=1), 0))
    assert [m["type"] for _, m in out] == ["subscribed", "book_snapshot", "book_snapshot", "bbo"]
    assert out[1][1]["seq"] == 5 and out[1][1]["asks"] == [[101.0, 2]]
    assert (
        decoded(feed.handle("c2", Subscribe(channels=["accounts"]), 0))[0][1]["code"] == "forbidden"
    )
    assert (
        decoded(feed.handle("c2", Subscribe(channels=["book.AAA"], depth=1001), 0))[0][1]["code"]
        == "invalid_message"
    )
    feed.handle("c2", Subscribe(channels=["book.AAA"], depth=1), 0)
    assert feed.subscriber_counts()["book"] == 3
    # A new snapshot: every book group gets one fresh snapshot, BBO subscribers the BBO.
    snapshot = EngineSnapshot(
        9, 90, [instrument(s) for s in SYMBOLS], [BookState("AAA", [(98.0, 4)], [])], []
    )
    out = decoded(feed.apply_snapshot(snapshot))
    assert sorted((sorted(a), m["type"], m.get("symbol")) for a, m in out) == [
        (["c1"], "bbo", "AAA"),
        (["c1"], "book_snapshot", "AAA"),
        (["c1"], "book_snapshot", "BBB"),
        (["c2"], "book_snapshot", "AAA"),
    ]
    assert all(m["seq"] == 9 for _, m in out)
    feed.handle("c1", Unsubscribe(channels=["book.*"]), 0)
    feed.disconnect("c2")
    assert feed.subscriber_counts()["book"] == 0 and feed.groups == {}
    assert feed.recent_trades("AAA", 10) == []
