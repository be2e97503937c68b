"""The relay's ``status`` channel (PROTOCOL §3.2, §4): ``market_status`` and ``auction`` fan
out, a subscriber first gets every symbol's status and the live auctions, ``instruments``
follow the status, and a snapshot (relay restart) teaches the statuses too."""

from __future__ import annotations

from typing import Any

import msgspec

from exchange.protocol.internal import EngineSnapshot
from exchange.protocol.messages import (
    AuctionInfo,
    InstrumentInfo,
    MarketStatus,
    Subscribe,
)
from marketdata.channels import parse
from marketdata.feed import MarketFeed, Outgoing


def instrument(symbol: str, status: Any = "open") -> InstrumentInfo:
    return InstrumentInfo(
        symbol, 0.5, 1.0, 100.0, 0.1, 0.05, 1000, 10000, 0.1, 0.0, 0.0, status=status
    )


def decoded(out: list[Outgoing], conn: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(frame) for audience, frame, _kind in out if conn in audience]


def synced_feed(*statuses: Any) -> MarketFeed[str]:
    infos = [instrument("AAA", statuses[0]), instrument("BBB", statuses[1])]
    feed: MarketFeed[str] = MarketFeed(infos)
    feed.apply_snapshot(EngineSnapshot(10, 1000, infos, [], []))
    return feed


def subscribe(feed: MarketFeed[str], conn: str, *channels: str) -> list[dict[str, Any]]:
    feed.connect(conn)
    return decoded(feed.handle(conn, Subscribe(channels=list(channels)), 0), conn)[1:]


def test_status_is_a_global_channel() -> None:
    assert parse("status", ["AAA"]) == ("status", None)
    assert parse("status.AAA", ["AAA"]) is None


def test_subscriber_gets_every_symbols_status_then_the_live_auctions() -> None:
    feed = synced_feed("open", "open")
    halt = MarketStatus("AAA", "halted", "admin", 5000, 1100, 11, req_id=7)
    auction = MarketStatus("BBB", "auction", "circuit_breaker", 6000, 1200, 12)
    info = AuctionInfo("BBB", 101.5, 30, -4, 6000, 1300, 13)
    feed.apply_events([halt, auction, info])
    got = subscribe(feed, "c", "status")
    assert [(m["type"], m["symbol"], m["status"]) for m in got[:2]] == [
        ("market_status", "AAA", "halted"),
        ("market_status", "BBB", "auction"),
    ]
    assert got[0]["reason"] == "admin" and got[0]["until"] == 5000 and got[0]["seq"] == 11
    assert got[0]["req_id"] is None  # the operator's request id stays private
    assert got[1]["reason"] == "circuit_breaker"
    assert got[2] == {
        "type": "auction",
        "symbol": "BBB",
        "indicative_price": 101.5,
        "indicative_qty": 30,
        "imbalance": -4,
        "ends_at": 6000,
        "ts": 1300,
        "seq": 13,
    }
    assert len(got) == 3


def test_open_symbols_are_sent_too_learned_from_the_instruments() -> None:
    got = subscribe(synced_feed("open", "halted"), "c", "status")
    assert [(m["symbol"], m["status"], m["reason"], m["until"]) for m in got] == [
        ("AAA", "open", "admin", None),
        ("BBB", "halted", "admin", None),
    ]
    assert all(m["seq"] == 10 and m["ts"] == 1000 for m in got)  # the snapshot's


def test_events_fan_out_and_instruments_follow_the_status() -> None:
    feed = synced_feed("open", "open")
    subscribe(feed, "s", "status")
    subscribe(feed, "i", "instruments")
    subscribe(feed, "n", "news")
    out = feed.apply_events([MarketStatus("AAA", "halted", "admin", None, 1100, 11)])
    assert [m["type"] for m in decoded(out, "s")] == ["market_status"]
    assert decoded(out, "n") == []
    (instruments,) = decoded(out, "i")
    assert [i["status"] for i in instruments["instruments"]] == ["halted", "open"]
    assert feed.instruments[0].status == "halted"
    # The same status again (e.g. a halt extended): the status goes out, instruments do not.
    out = feed.apply_events([MarketStatus("AAA", "halted", "admin", 9000, 1150, 12)])
    assert decoded(out, "i") == [] and decoded(out, "s")[0]["until"] == 9000
    out = feed.apply_events([AuctionInfo("AAA", None, 0, 0, None, 1200, 13)])
    assert decoded(out, "s")[0]["type"] == "auction" and decoded(out, "i") == []


def test_auction_is_forgotten_when_the_symbol_opens() -> None:
    feed = synced_feed("open", "open")
    feed.apply_events(
        [
            MarketStatus("AAA", "auction", "schedule", 5000, 1100, 11),
            AuctionInfo("AAA", 100.0, 5, 1, 5000, 1200, 12),
            MarketStatus("AAA", "open", "schedule", None, 5000, 13),
        ]
    )
    assert feed.auctions == {}
    got = subscribe(feed, "c", "status")
    assert [(m["type"], m["status"]) for m in got] == [
        ("market_status", "open"),
        ("market_status", "open"),
    ]


def test_a_snapshot_teaches_statuses_and_tells_subscribers_what_changed() -> None:
    feed = synced_feed("open", "open")
    feed.apply_events(
        [
            MarketStatus("AAA", "auction", "admin", None, 1100, 11),
            AuctionInfo("AAA", 100.0, 5, 1, None, 1200, 12),
        ]
    )
    subscribe(feed, "s", "status")
    subscribe(feed, "i", "instruments")
    infos = [instrument("AAA", "auction"), instrument("BBB", "halted")]
    out = feed.apply_snapshot(EngineSnapshot(20, 2000, infos, [], []))
    # AAA's status did not change: its event (reason, seq) and auction are kept.
    (bbb,) = decoded(out, "s")
    assert (bbb["symbol"], bbb["status"], bbb["seq"], bbb["ts"]) == ("BBB", "halted", 20, 2000)
    assert [i["status"] for i in decoded(out, "i")[0]["instruments"]] == ["auction", "halted"]
    assert feed.statuses["AAA"].seq == 11 and "AAA" in feed.auctions
    # AAA opened while the relay was away: the auction goes.
    infos = [instrument("AAA"), instrument("BBB", "halted")]
    out = feed.apply_snapshot(EngineSnapshot(30, 3000, infos, [], []))
    assert [(m["symbol"], m["status"]) for m in decoded(out, "s")] == [("AAA", "open")]
    assert feed.auctions == {}


def test_subscriber_counts_know_every_global_channel() -> None:
    feed = synced_feed("open", "open")
    subscribe(feed, "c", "status", "news", "rounds")
    counts = feed.subscriber_counts()
    assert (counts["status"], counts["news"], counts["rounds"]) == (1, 1, 1)
