"""The market-data relay against a real core behind a test event port (real sockets, port 0).

Synchronisation is by data, never by sleeping: a heartbeat showing a symbol's book at seq N
proves that every message for earlier events has been read on that connection.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from exchange.protocol.codec import encode
from exchange.protocol.config import MarketDataSection
from exchange.protocol.messages import (
    AccountUpdate,
    AuctionInfo,
    Fill,
    Liquidation,
    MarketStatus,
    NewOrder,
)
from marketdata.__main__ import instrument_infos
from marketdata.server import MarketDataRelay
from tests.integration.fake_engine import (
    MONITOR_TOKEN,
    FakeEngine,
    liquidation_scenario,
    random_flow,
)
from tests.integration.feed_client import FeedClient
from tests.support import seconds

TRADE_FIELDS = {"type", "symbol", "trade_id", "price", "qty", "aggressor", "ts", "seq"}


@pytest.fixture
async def engine() -> AsyncIterator[FakeEngine]:
    fake = FakeEngine()
    await fake.start()
    yield fake
    await fake.stop()


async def start_relay(engine: FakeEngine, **settings: Any) -> MarketDataRelay:
    sndbuf = settings.pop("socket_send_buffer", None)
    section = MarketDataSection(
        monitor_tokens=[MONITOR_TOKEN], heartbeat_ms=settings.pop("heartbeat_ms", 50), **settings
    )
    relay = MarketDataRelay(
        upstream=engine.url,
        instruments=instrument_infos(engine.config),
        settings=section,
        port=0,
        slow_grace=seconds(5),
        socket_send_buffer=sndbuf,
    )
    await relay.start()
    await asyncio.wait_for(relay.synced.wait(), seconds(5))
    return relay


@pytest.fixture
async def relay(engine: FakeEngine) -> AsyncIterator[MarketDataRelay]:
    relay = await start_relay(engine)
    yield relay
    await relay.stop()


def url(relay: MarketDataRelay) -> str:
    return f"ws://127.0.0.1:{relay.port}"


async def client(relay: MarketDataRelay, depth: int | None = None, **kw: Any) -> FeedClient:
    return await FeedClient.open(url(relay), depth, **kw)


def assert_books_match(engine: FakeEngine, feed: FeedClient, depth: int | None) -> None:
    for symbol in ("AAA", "BBB"):
        bids, asks = feed.books[symbol].ladder()
        assert (bids, asks) == engine.depth(symbol, depth), symbol


async def test_books_trades_bbo_reproduce_the_engine(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    rng = random.Random(7)
    random_flow(engine, rng, 150)  # a book that exists before anyone subscribes
    full = await client(relay, depth=1000)
    top3 = await client(relay, depth=3)
    assert (await full.subscribe("book.*", "trades.*"))["type"] == "subscribed"
    reply = await top3.subscribe("book.AAA", "book.BBB", "bbo.*", req_id="r1")
    assert reply == {
        "type": "subscribed",
        "channels": ["book.AAA", "book.BBB", "bbo.*"],
        "req_id": "r1",
    }
    first_fill = len(engine.events)
    random_flow(engine, rng, 600)
    late = await client(relay, depth=5)  # joins mid-stream
    await late.subscribe("book.AAA", "book.BBB")
    random_flow(engine, rng, 400)

    for feed, depth in ((full, None), (top3, 3), (late, 5)):
        await feed.sync(engine.last_book_seq)
        assert_books_match(engine, feed, depth)
        # Exactly one snapshot per symbol; the rest were chained updates.
        assert sorted(s["symbol"] for s in feed.snapshots) == ["AAA", "BBB"]
    assert all(book.updates > 50 for book in full.books.values())
    assert any(book.updates < full.books[s].updates for s, book in top3.books.items())

    fills = [e for e in engine.events[first_fill:] if type(e) is Fill]
    assert len(fills) > 20
    assert [
        (t["symbol"], t["trade_id"], t["price"], t["qty"], t["aggressor"], t["seq"])
        for t in full.trades
    ] == [(f.symbol, f.trade_id, f.price, f.qty, f.aggressor, f.seq) for f in fills]
    assert all(set(t) == TRADE_FIELDS for t in full.trades)  # no account names
    for symbol in ("AAA", "BBB"):
        bbo = top3.bbos[symbol]
        (bid, bid_qty), (ask, ask_qty) = (
            engine.depth(symbol, 1)[0][0],
            engine.depth(symbol, 1)[1][0],
        )
        assert (bbo["bid"], bbo["bid_qty"], bbo["ask"], bbo["ask_qty"]) == (
            bid,
            bid_qty,
            ask,
            ask_qty,
        )
    # Private data never reaches a public channel.
    for feed in (full, top3, late):
        kinds = {m["type"] for m in feed.seen}
        assert kinds <= {"subscribed", "book_snapshot", "book_update", "trade", "bbo", "heartbeat"}
        assert not any("account" in m or "buy_account" in m for m in feed.seen)
    for feed in (full, top3, late):
        await feed.close()


async def test_depth_views_follow_levels_entering_and_leaving(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    for i in range(4):
        engine.submit("a", NewOrder(symbol="AAA", side="sell", qty=1 + i, price=101.0 + i))
    top2 = await client(relay, depth=2)
    await top2.subscribe("book.AAA")
    assert top2.books["AAA"].ladder() == ([], [[101.0, 1], [102.0, 2]])
    snapshot_seq = top2.books["AAA"].seq
    # A level below the view changes: nothing is sent for it...
    engine.submit("b", NewOrder(symbol="AAA", side="sell", qty=5, price=104.0))
    # ...a better level pushes 102 out...
    engine.submit("b", NewOrder(symbol="AAA", side="sell", qty=7, price=100.5))
    update = await top2.until(lambda m: m["type"] == "book_update")
    assert update["prev_seq"] == snapshot_seq
    assert update["asks"] == [[100.5, 7], [102.0, 0]] and update["bids"] == []
    # ...and taking the best level pulls 102 back in.
    engine.submit("c", NewOrder(symbol="AAA", side="buy", qty=7, price=100.5))
    update = await top2.until(lambda m: m["type"] == "book_update")
    assert update["asks"] == [[100.5, 0], [102.0, 2]]
    await top2.sync(engine.last_book_seq)
    assert top2.books["AAA"].ladder() == engine.depth("AAA", 2)
    # Resubscribing with another depth gives a fresh snapshot at that depth.
    top2.depth = 3
    await top2.subscribe("book.AAA", depth=3)
    assert top2.snapshots[-1]["asks"] == [[101.0, 1], [102.0, 2], [103.0, 3]]
    await top2.close()


async def test_one_engine_frame_gives_one_frame_shared_by_identical_subscribers(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    feeds = [await client(relay, depth=depth) for depth in (10, 10, 1)]
    for feed in feeds:
        await feed.subscribe("book.AAA", "trades.AAA", "bbo.AAA")
    engine.submit("a", NewOrder(symbol="AAA", side="sell", qty=2, price=101.0))
    engine.submit("a", NewOrder(symbol="AAA", side="sell", qty=3, price=102.0))  # below top 1
    for feed in feeds:
        await feed.sync(engine.last_book_seq)
    # One engine frame: the buy takes the best ask (a fill, a book change, a new BBO).
    engine.submit("b", NewOrder(symbol="AAA", side="buy", qty=2, price=101.0))
    for feed in feeds:
        await feed.sync(engine.last_book_seq)
    frames = [next(f for f in feed.frames if f[0]["type"] == "trade") for feed in feeds]
    for frame in frames:
        assert [m["type"] for m in frame if m["type"] != "heartbeat"] == [
            "trade",
            "book_update",
            "bbo",
        ]
    # Identical subscriptions: the same frame. Depth 1: its own view and chain.
    assert frames[0] == frames[1]
    assert frames[0][1]["asks"] == [[101.0, 0]]
    assert frames[2][1]["asks"] == [[101.0, 0], [102.0, 3]]
    assert frames[2][1]["prev_seq"] < frames[0][1]["prev_seq"]
    assert feeds[2].books["AAA"].ladder() == engine.depth("AAA", 1)
    for feed in feeds:
        await feed.close()


async def test_accounts_need_a_monitor_token(engine: FakeEngine, relay: MarketDataRelay) -> None:
    feed = await client(relay)
    reply = await feed.subscribe("accounts", "liquidations", req_id=5)
    assert reply["type"] == "error" and reply["code"] == "forbidden" and reply["ref"] == 5
    reply = await feed.subscribe("accounts", token="wrong")
    assert reply["code"] == "forbidden"
    reply = await feed.subscribe("accounts", token=MONITOR_TOKEN)
    assert reply == {"type": "subscribed", "channels": ["accounts"], "req_id": None}
    # The current state of every account arrives first...
    names: set[str] = set()
    while len(names) < 5:
        message = await feed.read()
        assert message["type"] == "account_update"
        names.add(message["account"])
    assert names == {"a", "b", "c", "d", "insurance_fund"}
    # ...then every change.
    engine.submit("a", NewOrder(symbol="AAA", side="sell", qty=3, price=100.0))
    events = engine.submit("b", NewOrder(symbol="AAA", side="buy", qty=3, price=100.0))
    expected = next(e for e in events if type(e) is AccountUpdate and e.account == "b")
    update = await feed.until(lambda m: m["type"] == "account_update" and m["account"] == "b")
    assert update == json.loads(encode(expected))
    assert update["positions"][0]["qty"] == 3
    await feed.close()


async def test_liquidations_and_instruments_channels(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    feed = await client(relay)
    await feed.subscribe("liquidations", "instruments", req_id="x")
    instruments = await feed.until(lambda m: m["type"] == "instruments")
    assert [i["symbol"] for i in instruments["instruments"]] == ["AAA", "BBB"]
    assert set(instruments["instruments"][0]) == {
        "symbol",
        "tick_size",
        "lot_size",
        "reference_price",
        "initial_margin",
        "maintenance_margin",
        "max_order_qty",
        "max_position",
        "price_band",
        "maker_fee",
        "taker_fee",
        "status",
    }
    liquidation_scenario(engine)
    expected = next(e for e in engine.events if type(e) is Liquidation)
    message = await feed.until(lambda m: m["type"] == "liquidation")
    assert message == json.loads(encode(expected))
    assert (message["account"], message["side"], message["qty"]) == ("poor", "sell", 100)
    await feed.close()


async def test_requests_errors_and_framing(engine: FakeEngine, relay: MarketDataRelay) -> None:
    feed = await client(relay)
    await feed.send('{"type":"subscribe","channels":["book.NOPE"],"req_id":1}')
    assert await feed.read() == {
        "type": "error",
        "code": "unknown_channel",
        "text": "unknown channel: book.NOPE",
        "ref": 1,
        "retry_after_ms": None,
        "req_id": 1,
    }
    await feed.send('{"type":"subscribe","channels":["trades.AAA"],"bogus":1,"req_id":"x"}')
    error = await feed.read()
    assert error["code"] == "invalid_message" and error["ref"] == "x" and error["req_id"] == "x"
    await feed.send("[" * 3000 + "]" * 3000)  # too deep: an error, and the connection stays
    error = await feed.read()
    assert error["code"] == "invalid_message" and "nested deeper" in error["text"]
    await feed.send("not json")
    assert (await feed.read())["code"] == "invalid_message"
    await feed.send(b"\x00binary")
    assert (await feed.read())["code"] == "invalid_message"
    await feed.send("[]")
    assert (await feed.read())["code"] == "invalid_message"
    await feed.send({"type": "subscribe", "channels": ["trades.AAA"], "depth": 0})
    assert (await feed.read())["code"] == "invalid_message"
    # A batch: handled member by member; one bad member spoils nothing.
    await feed.send(
        [
            {"type": "ping", "req_id": 1},
            {"type": "nope"},
            {"type": "subscribe", "channels": ["trades.AAA", "liquidations"], "req_id": 2},
            {"type": "unsubscribe", "channels": ["trades.AAA"], "req_id": 3},
        ]
    )
    pong = await feed.read()
    assert pong["type"] == "pong" and pong["req_id"] == 1
    assert (await feed.read())["code"] == "invalid_message"
    assert (await feed.read())["req_id"] == 2
    assert await feed.read() == {"type": "unsubscribed", "channels": ["trades.AAA"], "req_id": 3}
    # ...and the replies to one frame come in one frame; a single reply comes bare.
    assert [m["type"] for m in feed.frames[-1]] == ["pong", "error", "subscribed", "unsubscribed"]
    await feed.send({"type": "ping", "req_id": 4})
    assert (await feed.until(lambda m: m["type"] == "pong"))["req_id"] == 4
    assert len(feed.frames[-1]) == 1
    # Heartbeats carry every symbol's latest book seq.
    heartbeat = await feed.until(lambda m: m["type"] == "heartbeat")
    assert set(heartbeat["seqs"]) == {"AAA", "BBB"} and heartbeat["ts"] > 0
    # Oversized frames close 1009.
    await feed.send("x" * 70_000)
    with pytest.raises(ConnectionClosed) as closed:
        await feed.until(lambda m: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_too_many_invalid_messages_close_1008(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    feed = await client(relay)
    await feed.send([{"type": "nope"}] * 101)
    with pytest.raises(ConnectionClosed) as closed:
        await feed.until(lambda m: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert sum(m["type"] == "error" for m in feed.seen) == 101


async def test_invalid_utf8_closes_1007(engine: FakeEngine, relay: MarketDataRelay) -> None:
    feed = await client(relay)
    await feed.ws.send(b'{"type":"ping","req_id":"\xff"}', text=True)
    with pytest.raises(ConnectionClosed) as closed:
        await feed.until(lambda m: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert not [m for m in feed.seen if m["type"] == "pong"]


def http_get(relay: MarketDataRelay, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{relay.port}{path}", timeout=seconds(5)
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_http_get_routes(engine: FakeEngine, relay: MarketDataRelay) -> None:
    random_flow(engine, random.Random(3), 300)
    feed = await client(relay)
    await feed.subscribe("bbo.AAA")
    await feed.sync(engine.last_book_seq)  # the relay has applied everything

    async def get(path: str) -> tuple[int, Any]:
        status, body = await asyncio.to_thread(http_get, relay, path)
        return status, (json.loads(body) if body.startswith(b"{") else body)

    status, body = await get("/api/v1/instruments")
    assert status == 200 and body["type"] == "instruments"
    assert [i["symbol"] for i in body["instruments"]] == ["AAA", "BBB"]
    assert body["instruments"][0]["tick_size"] == 0.01
    status, body = await get("/api/v1/book/AAA?depth=4")
    assert status == 200 and body["type"] == "book_snapshot"
    assert (body["bids"], body["asks"]) == engine.depth("AAA", 4)
    assert body["seq"] == engine.last_book_seq["AAA"]
    status, body = await get("/api/v1/bbo/BBB")
    bids, asks = engine.depth("BBB", 1)
    assert status == 200 and (body["bid"], body["ask"]) == (bids[0][0], asks[0][0])
    status, body = await get("/api/v1/trades/AAA?limit=5")
    fills = [e for e in engine.events if type(e) is Fill and e.symbol == "AAA"][-5:]
    assert status == 200 and body["type"] == "trades" and body["symbol"] == "AAA"
    assert [t["trade_id"] for t in body["trades"]] == [f.trade_id for f in fills]
    assert all(set(t) == TRADE_FIELDS for t in body["trades"])
    status, body = await get("/api/v1/book/NOPE")
    assert status == 404 and body["type"] == "error" and body["code"] == "unknown_symbol"
    status, body = await get("/api/v1/trades/AAA?limit=abc")
    assert status == 400 and body["code"] == "invalid_message"
    status, body = await get("/healthz")
    assert status == 200 and body == {"status": "ok"}
    status, body = await get("/metrics")
    assert status == 200 and b"marketdata_messages_out_total" in body
    assert b'marketdata_subscribers{channel="bbo"} 1.0' in body
    assert b"marketdata_frames_out_total" in body
    assert b"marketdata_client_buffered_bytes " in body
    assert b"marketdata_client_buffered_bytes_max " in body
    await feed.close()


async def test_slow_consumer_is_cut_off_and_others_carry_on(engine: FakeEngine) -> None:
    relay = await start_relay(engine, max_buffered_bytes=64 * 1024, socket_send_buffer=16384)
    try:
        fast = await client(relay, depth=1000)
        # The slow client stops reading: a tiny receive queue and socket buffer, and it never
        # calls recv() (kernel buffers would otherwise hide megabytes).
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", relay.port))
        slow = await client(relay, depth=1000, max_queue=1, sock=sock)
        for feed in (fast, slow):
            await feed.subscribe("book.*", "trades.*", "bbo.*")
        rng = random.Random(11)
        rounds = 0
        while relay.stats.slow_consumers == 0:
            rounds += 1
            assert rounds < 100, "the slow client was never cut off"
            random_flow(engine, rng, 100)
            # The fast client is never behind by more than what was just sent.
            await fast.sync(engine.last_book_seq, timeout=2)
        assert_books_match(engine, fast, None)
        assert relay.stats.slow_consumers == 1 and len(relay.connections) == 1
        # The slow client finds, after its backlog, the error and a 1013 close.
        with pytest.raises(ConnectionClosed) as closed:
            await slow.until(lambda m: False, timeout=10)
        assert slow.seen[-1]["type"] == "error" and slow.seen[-1]["code"] == "slow_consumer"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        # The fast one is unaffected.
        random_flow(engine, rng, 50)
        await fast.sync(engine.last_book_seq)
        assert_books_match(engine, fast, None)
        await fast.close()
    finally:
        await relay.stop()


async def test_subscribers_before_the_engine_is_up_get_snapshots_once_it_is() -> None:
    engine = FakeEngine()
    await engine.start()
    await engine.stop()  # its port is known; nothing listens there yet
    relay = MarketDataRelay(
        upstream=engine.url,
        instruments=instrument_infos(engine.config),
        settings=MarketDataSection(heartbeat_ms=50),
        port=0,
    )
    await relay.start()
    try:
        feed = await client(relay, depth=5)
        await feed.send({"type": "subscribe", "channels": ["book.AAA", "bbo.AAA"], "depth": 5})
        assert (await feed.read())["type"] == "subscribed"
        status, body = await asyncio.to_thread(http_get, relay, "/healthz")
        assert status == 503
        status, body = await asyncio.to_thread(http_get, relay, "/api/v1/book/AAA")
        assert status == 503 and json.loads(body)["code"] == "engine_unavailable"
        random_flow(engine, random.Random(1), 100)
        await engine.start()
        snapshot = await feed.until(lambda m: m["type"] == "book_snapshot", timeout=10)
        assert snapshot["seq"] == engine.last_seq
        assert feed.books["AAA"].ladder() == engine.depth("AAA", 5)
        assert (await feed.until(lambda m: m["type"] == "bbo"))["seq"] == engine.last_seq
        await feed.close()
    finally:
        await relay.stop()
        await engine.stop()


async def test_upstream_restart_with_history_resumes_without_resnapshot(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    rng = random.Random(5)
    random_flow(engine, rng, 100)
    feed = await client(relay, depth=1000)
    await feed.subscribe("book.*")
    await engine.stop()
    random_flow(engine, rng, 200)  # the engine moves on while the relay is cut off
    await engine.start()
    await feed.sync(engine.last_book_seq, timeout=10)
    assert_books_match(engine, feed, None)
    assert len(feed.snapshots) == 2  # the first ones only; the chain never broke
    assert engine.requests[-1] is not None and engine.snapshots_sent == 1
    await feed.close()


async def test_upstream_restart_without_history_sends_fresh_snapshots(
    engine: FakeEngine, relay: MarketDataRelay
) -> None:
    rng = random.Random(9)
    random_flow(engine, rng, 100)
    feed = await client(relay, depth=1000)
    top = await client(relay, depth=2)
    await feed.subscribe("book.*")
    await top.subscribe("book.AAA", "bbo.AAA")
    await engine.stop()
    random_flow(engine, rng, 200)
    engine.history_floor = engine.last_seq  # the engine "lost" the events in between
    await engine.start()
    resync = await feed.until(lambda m: m["type"] == "book_snapshot")
    assert resync["seq"] == engine.last_seq
    await top.until(lambda m: m["type"] == "book_snapshot")
    random_flow(engine, rng, 100)
    for client_, depth in ((feed, None), (top, 2)):
        await client_.sync(engine.last_book_seq, timeout=10)
        if depth is None:
            assert_books_match(engine, client_, None)
        else:
            assert top.books["AAA"].ladder() == engine.depth("AAA", 2)
    assert engine.snapshots_sent == 2
    assert relay.feed.resyncs == 1
    await feed.close()
    await top.close()


async def test_status_channel_follows_the_engine_and_a_relay_restart(engine: FakeEngine) -> None:
    relay = await start_relay(engine)
    feed = await client(relay)
    await feed.subscribe("status", "instruments")
    first = [await feed.until(lambda m: m["type"] == "market_status") for _ in range(2)]
    assert [(m["symbol"], m["status"]) for m in first] == [("AAA", "open"), ("BBB", "open")]
    random_flow(engine, random.Random(3), 20)
    (halt,) = engine.inject(MarketStatus("AAA", "halted", "admin", None, 0, 0, req_id=4))
    await feed.until(lambda m: m["type"] == "instruments")  # the subscription's
    instruments = await feed.until(lambda m: m["type"] == "instruments")
    assert [i["status"] for i in instruments["instruments"]] == ["halted", "open"]
    message = await feed.until(lambda m: m["type"] == "market_status")
    assert message == {**json.loads(encode(halt)), "req_id": None}
    engine.inject(
        MarketStatus("AAA", "auction", "admin", None, 0, 0),
        AuctionInfo("AAA", 100.0, 7, 2, None, 0, 0),
    )
    random_flow(engine, random.Random(4), 20)  # the core's seqs carry on after the injected
    auction = await feed.until(lambda m: m["type"] == "auction")
    assert (auction["indicative_price"], auction["indicative_qty"]) == (100.0, 7)
    await feed.close()
    await relay.stop()
    # A new relay learns the statuses from the engine's snapshot.
    relay = await start_relay(engine)
    feed = await client(relay)
    await feed.subscribe("status", "instruments")
    statuses = [await feed.until(lambda m: m["type"] == "market_status") for _ in range(2)]
    assert [(m["symbol"], m["status"]) for m in statuses] == [("AAA", "auction"), ("BBB", "open")]
    assert statuses[0]["reason"] == "admin" and statuses[0]["seq"] == engine.last_seq
    instruments = await feed.until(lambda m: m["type"] == "instruments")
    assert [i["status"] for i in instruments["instruments"]] == ["auction", "open"]
    await feed.close()
    await relay.stop()
