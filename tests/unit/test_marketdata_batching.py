"""The relay's batching: one frame per connection, shared by connections due the same messages."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from exchange.protocol.internal import BookState, EngineSnapshot
from exchange.protocol.messages import Bbo, BookDelta, Fill, InstrumentInfo, Subscribe
from marketdata.batching import Batch
from marketdata.feed import MarketFeed, Outgoing

SYMBOLS = ["AAA", "BBB"]


def messages(frame: bytes) -> list[Any]:
    value = msgspec.json.decode(frame)
    return value if isinstance(value, list) else [value]


def received(frames: list[tuple[Any, bytes]]) -> dict[str, list[list[Any]]]:
    """Per connection, the messages of each frame it was written, in order."""
    out: dict[str, list[list[Any]]] = {}
    for conns, frame in frames:
        for conn in conns:
            out.setdefault(conn, []).append(messages(frame))
    return out


def due(outgoing: list[Outgoing]) -> dict[str, list[Any]]:
    """Per connection, what one message per frame would have given it."""
    out: dict[str, list[Any]] = {}
    for audience, frame, _kind in outgoing:
        for conn in audience:
            out.setdefault(conn, []).append(msgspec.json.decode(frame))
    return out


def test_one_frame_per_connection_built_once_per_group() -> None:
    c1, c2, c3, c4 = "c1", "c2", "c3", "c4"
    book: set[str] = {c1, c2, c3}
    trades: set[str] = {c1, c2, c4}
    deep: set[str] = {c3}
    batch: Batch[str] = Batch()
    batch.add([(trades, b'{"n":1}', "trades"), (book, b'{"n":2}', "book")])
    batch.add([(deep, b'{"n":3}', "book"), (trades, b'{"n":4}', "trades"), (set(), b"{}", "x")])
    assert batch and batch.nbytes == 28
    frames = batch.frames()
    assert not batch and batch.nbytes == 0 and batch.frames() == []
    by_conns = {frozenset(conns): frame for conns, frame in frames}
    # c1 and c2 are in the same audiences: one frame for both, built once.
    assert by_conns == {
        frozenset({c1, c2}): b'[{"n":1},{"n":2},{"n":4}]',
        frozenset({c3}): b'[{"n":2},{"n":3}]',
        frozenset({c4}): b'[{"n":1},{"n":4}]',
    }
    # One message: a bare object, not an array; one audience: written to it as is.
    counts: Counter[str] = Counter()
    batch.add([(trades, b'{"n":5}', "trades")], counts)
    assert batch.frames() == [(trades, b'{"n":5}')]
    assert counts == {"trades": 3}


@pytest.mark.parametrize("limit", [40, 100, 65536])
@pytest.mark.parametrize("seed", range(4))
def test_every_connection_gets_its_messages_in_order(limit: int, seed: int) -> None:
    rng = random.Random(seed)
    conns = [f"c{i}" for i in range(12)]
    audiences: list[Any] = [set(rng.sample(conns, rng.randint(1, 12))) for _ in range(6)]
    audiences += [(conn,) for conn in rng.sample(conns, 3)]  # replies go to one connection
    batch: Batch[str] = Batch(limit)
    outgoing: list[Outgoing] = []
    for n in range(rng.randint(1, 60)):
        audience = rng.choice(audiences)
        outgoing.append(
            (audience, msgspec.json.encode({"n": n, "pad": "x" * rng.randint(0, 30)}), "k")
        )
    for start in range(0, len(outgoing), 7):
        batch.add(outgoing[start : start + 7])
    frames = batch.frames()
    got = received(frames)
    expected = due(outgoing)
    assert {
        conn: [m for frame in got_frames for m in frame] for conn, got_frames in got.items()
    } == expected
    for _conns, frame in frames:
        assert len(frame) <= limit or len(messages(frame)) == 1
        assert frame.startswith(b"[") == (len(messages(frame)) > 1)
    if limit == 65536:
        # Unsplit: everything due to a connection in one frame, and connections due the same
        # sequence share it (as many frames as distinct sequences).
        assert all(len(got_frames) == 1 for got_frames in got.values())
        assert len(frames) == len({repr(sequence) for sequence in expected.values()})


def instrument(symbol: str) -> InstrumentInfo:
    return InstrumentInfo(symbol, 0.5, 1.0, 100.0, 0.1, 0.05, 1000, 10000, 0.1, 0.0, 0.0)


def test_feed_output_batches_per_subscription_profile() -> None:
    feed: MarketFeed[str] = MarketFeed([instrument(s) for s in SYMBOLS])
    feed.apply_snapshot(
        EngineSnapshot(
            5,
            50,
            [instrument(s) for s in SYMBOLS],
            [BookState("AAA", [(99.0, 1), (98.0, 1)], [(101.0, 2), (102.0, 3)])],
            [],
        )
    )
    same = ["s1", "s2", "s3"]
    for conn in [*same, "top1", "bbo"]:
        feed.connect(conn)
    for conn in same:
        feed.handle(conn, Subscribe(channels=["book.AAA", "trades.AAA", "bbo.AAA"], depth=10), 0)
    feed.handle("top1", Subscribe(channels=["book.AAA", "bbo.AAA"], depth=1), 0)
    feed.handle("bbo", Subscribe(channels=["bbo.*"]), 0)
    events = [
        Fill("AAA", 1, 101.0, 2, "buy", "x", "y", 10, 11, 0.1, 0.2, False, 60, 6),
        BookDelta("AAA", [], [(101.0, 0)], 60, 7),
        Bbo("AAA", 99.0, 1, 102.0, 3, 60, 8),
        BookDelta("AAA", [(98.0, 4)], [], 61, 9),  # below the top level: not for top1
    ]
    batch: Batch[str] = Batch()
    batch.add(feed.apply_events(events))
    frames = batch.frames()
    assert len(frames) == 3
    by_conns = {frozenset(conns): messages(frame) for conns, frame in frames}
    shared = by_conns[frozenset(same)]
    assert [(m["type"], m["seq"]) for m in shared] == [
        ("trade", 6),
        ("book_update", 7),
        ("bbo", 8),
        ("book_update", 9),
    ]
    assert shared[1]["prev_seq"] == 5 and shared[3]["prev_seq"] == 7
    top1 = by_conns[frozenset({"top1"})]
    assert [(m["type"], m["seq"], m.get("prev_seq")) for m in top1] == [
        ("book_update", 7, 5),
        ("bbo", 8, None),
    ]
    assert top1[0]["asks"] == [[101.0, 0], [102.0, 3]]
    assert by_conns[frozenset({"bbo"})] == [shared[2]]
