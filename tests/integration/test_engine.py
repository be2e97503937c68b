"""The engine process in-process over real sockets: command port envelopes, the event port
(history replay, snapshots, consistency under load, slow consumers, heartbeats), timers,
``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from exchange.engine.app import EngineApp
from tests.integration.clients import (
    CommandClient,
    Message,
    WsClient,
    command_client,
    config_with,
    engine_url,
    event_client,
    gateway_client,
    http_get,
    running_engine,
    running_gateway,
)


def order(side: str = "buy", qty: int = 1, price: float = 185.0, **fields: Any) -> Message:
    return {
        "type": "new_order",
        "symbol": "AAPL",
        "side": side,
        "qty": qty,
        "price": price,
        **fields,
    }


def random_order(rng: random.Random, low: float, high: float) -> Message:
    """A limit order of 1-3 lots on a random side at a random price in [low, high]."""
    side = rng.choice(("buy", "sell"))
    return order(side, rng.randint(1, 3), round(rng.uniform(low, high), 2))


@asynccontextmanager
async def orders_flowing(
    engine: EngineApp, seed: int, low: float, high: float
) -> AsyncIterator[None]:
    """Two gateways (maker1, maker2) send random orders back to back until the block ends."""
    rng = random.Random(seed)
    stop = asyncio.Event()

    async def flow(client: CommandClient, account: str) -> None:
        while not stop.is_set():
            await client.submit(account, random_order(rng, low, high))

    async with (
        command_client(engine.command_port) as first,
        command_client(engine.command_port) as second,
    ):
        producers = [
            asyncio.create_task(flow(first, "maker1")),
            asyncio.create_task(flow(second, "maker2")),
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*producers)


async def events_until(client: WsClient, last_seq: int) -> list[Message]:
    """Read event frames until the event with ``last_seq``; heartbeats are skipped."""
    events: list[Message] = []
    while not events or events[-1]["seq"] < last_seq:
        message = await client.next()
        if message["type"] != "heartbeat":
            events.append(message)
    return events


def assert_gapless(events: list[Message], first: int) -> None:
    assert [e["seq"] for e in events] == list(range(first, first + len(events)))


# ---------------------------------------------------------------------- command port


async def test_command_port_envelopes() -> None:
    async with running_engine() as engine, command_client(engine.command_port) as gateway:
        reply = await gateway.call({"type": "authenticate", "api_key": "bob-key"})
        [logged_in] = reply["messages"]
        assert logged_in["type"] == "logged_in" and logged_in["account"] == "bob"
        reply = await gateway.call({"type": "authenticate", "api_key": "wrong"})
        assert reply["messages"][0]["code"] == "auth_failed"

        reply = await gateway.submit("bob", order(qty=2, req_id=1))
        [report] = reply["messages"]
        assert report["exec_type"] == "new" and report["req_id"] == 1 and report["seq"] == 1

        reply = await gateway.call(
            {"type": "query", "account": "bob", "request": {"type": "get_orders", "req_id": 2}}
        )
        [orders] = reply["messages"]
        assert orders["type"] == "orders" and len(orders["orders"]) == 1 and orders["req_id"] == 2
        reply = await gateway.call(
            {"type": "query", "account": "bob", "request": {"type": "get_account"}}
        )
        assert reply["messages"][0]["type"] == "account"

        reply = await gateway.call({"type": "register_account", "account": "new1", "cash": 10})
        registered, update = reply["messages"]
        assert registered["type"] == "registered" and update["type"] == "account_update"
        reply = await gateway.call({"type": "authenticate", "api_key": registered["api_key"]})
        assert reply["messages"][0]["account"] == "new1"

        # an envelope the engine cannot read is answered when its id is readable
        await gateway.send({"type": "submit", "id": 99, "account": "bob", "command": {}})
        bad = await gateway.expect("reply", id=99)
        assert bad["messages"][0]["code"] == "invalid_message"


async def test_the_command_port_survives_any_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numbers out of range are refused before the journal; a command that makes the engine
    raise is answered internal_error; neither closes the link (PROTOCOL.md §2)."""
    async with running_engine() as engine, command_client(engine.command_port) as gateway:
        seq_before = engine.sequencer.core.last_seq
        for fields, reason in (
            ({"qty": 2**64}, "invalid_qty"),
            ({"qty": 2**70}, "invalid_qty"),
            ({"qty": -(2**64)}, "invalid_qty"),
            ({"price": 1e308}, "invalid_price"),
            ({"price": -1.0}, "invalid_price"),
        ):
            reply = await gateway.submit("bob", order(**fields, req_id="x"))
            [report] = reply["messages"]
            assert (report["exec_type"], report["reject_reason"]) == ("rejected", reason)
            assert report["seq"] is None and report["req_id"] == "x", (fields, report)
        amend = {"type": "amend_order", "order_id": 1, "qty": 2**64, "req_id": 3}
        [reject] = (await gateway.submit("bob", amend))["messages"]
        assert (reject["type"], reject["reject_reason"]) == ("cancel_reject", "invalid_qty")
        assert engine.sequencer.core.last_seq == seq_before  # nothing was journaled or applied
        # A tiny positive price is representable: the core refuses it (off the tick), with a seq.
        [report] = (await gateway.submit("bob", order(price=5e-324)))["messages"]
        assert (report["reject_reason"], report["seq"]) == ("invalid_price", seq_before + 1)

        class Broken:
            def submit(self, *_args: Any) -> list[Any]:
                raise OverflowError("a bug")

        monkeypatch.setattr(engine.command, "_sequencer", Broken())
        reply = await gateway.submit("bob", order(req_id=4))
        assert reply["messages"][0]["code"] == "internal_error"
        monkeypatch.undo()
        await gateway.send_raw("[" * 5000 + "]" * 5000)  # no id to answer; the link stays
        await gateway.send_raw(
            '[{"type":"submit","id":77,"account":' + "[" * 500 + "]" * 500 + "}]"
        )
        bad = await gateway.expect("reply", id=77)
        assert bad["messages"][0]["code"] == "invalid_message"
        reply = await gateway.submit("bob", order(req_id=5))  # the same link, still served
        assert reply["messages"][0]["exec_type"] == "new"
        assert engine.stats.command_failures == 1


async def test_private_events_are_pushed_to_other_gateways() -> None:
    async with (
        running_engine() as engine,
        command_client(engine.command_port) as first,
        command_client(engine.command_port) as second,
    ):
        await first.submit("bob", order("sell", 2, 185.0))
        pushed = await second.expect("push")
        assert [e["exec_type"] for e in pushed["events"]] == ["new"]
        reply = await second.submit("alice", order("buy", 2, 185.0))
        kinds = [(m["type"], m.get("account")) for m in reply["messages"]]
        assert ("execution_report", "bob") in kinds  # the maker's fill is in the reply too
        push = await first.expect("push")
        accounts = {e["account"] for e in push["events"]}
        assert accounts == {"alice", "bob"}
        assert {e["type"] for e in push["events"]} == {"execution_report", "account_update"}


# ---------------------------------------------------------------------- event port


async def test_since_replays_history_then_continues_live() -> None:
    async with running_engine() as engine, command_client(engine.command_port) as gateway:
        for price in (184.0, 185.0, 186.0):
            await gateway.submit("alice", order(price=price))
        last = engine.core.last_seq
        async with event_client(engine.event_port, since=0) as consumer:
            replayed = await events_until(consumer, last)
            assert_gapless(replayed, 1)
            assert replayed[0]["type"] == "execution_report"
            await gateway.submit("bob", order("sell", 1, 186.0))
            live = await events_until(consumer, engine.core.last_seq)
            assert_gapless(live, last + 1)
            assert {e["type"] for e in live} >= {"fill", "book_delta", "account_update"}
        async with event_client(engine.event_port, since=last) as consumer:
            tail = await events_until(consumer, engine.core.last_seq)
            assert_gapless(tail, last + 1)
        assert engine.stats.history_replays == 2


async def test_snapshot_when_since_is_null_too_old_or_ahead() -> None:
    config = config_with(engine={"event_history": 4})
    async with running_engine(config) as engine, command_client(engine.command_port) as gateway:
        await gateway.submit("alice", order(qty=3, price=185.0))
        await gateway.submit("alice", order(qty=2, price=184.0))
        await gateway.submit("bob", order("sell", 1, 185.0))
        last = engine.core.last_seq
        assert last > 4
        asks: list[list[float]] = []
        for since in (None, 0, last + 100):
            async with event_client(engine.event_port, since=since) as consumer:
                snapshot = await consumer.next()
                assert snapshot["type"] == "snapshot" and snapshot["seq"] == last
                book = next(b for b in snapshot["books"] if b["symbol"] == "AAPL")
                assert book["bids"] == [[185.0, 2], [184.0, 2]] and book["asks"] == asks
                assert book["last_trade"] == 185.0
                assert {i["symbol"] for i in snapshot["instruments"]} >= {"AAPL", "BTC-PERP"}
                accounts = {a["account"]: a for a in snapshot["accounts"]}
                assert accounts["bob"]["positions"][0]["qty"] == -1
                assert accounts["alice"]["seq"] == last
                await gateway.submit("carol", order("sell", 1, 190.0))
                live = await events_until(consumer, engine.core.last_seq)
                assert_gapless(live, last + 1)
                last = engine.core.last_seq
                asks = [[190.0, len(asks) + 1]]


async def test_stream_is_gapless_while_orders_flow() -> None:
    """Consumers joining mid-flow (snapshot, history) see every event exactly once."""
    async with running_engine() as engine:
        async with orders_flowing(engine, 7, 183.0, 187.0):
            # wait (for events, not time) until the flow is under way
            async with event_client(engine.event_port, since=0) as early:
                await events_until(early, 50)
            async with (
                event_client(engine.event_port, since=None) as by_snapshot,
                event_client(engine.event_port, since=20) as by_history,
            ):
                snapshot = await by_snapshot.next()
                assert snapshot["type"] == "snapshot"
                target = snapshot["seq"] + 200
                from_snapshot = await events_until(by_snapshot, target)
                from_history = await events_until(by_history, target)
        assert_gapless(from_snapshot, snapshot["seq"] + 1)
        assert_gapless(from_history, 21)


async def test_since_older_than_memory_is_served_from_disk_while_orders_flow(
    tmp_path: Path,
) -> None:
    """A tiny history that the flow overtakes many times during the catch-up: the events
    come from the journal, then memory, then live, each once, never a snapshot."""
    config = config_with(engine={"event_history": 8})
    async with running_engine(config, data_dir=tmp_path) as engine:
        async with orders_flowing(engine, 3, 184.0, 186.0):
            async with event_client(engine.event_port, since=None) as watcher:
                await watcher.expect("snapshot")
                await events_until(watcher, 400)  # the flow is well past the memory
            catch_ups = []
            for since in (0, 150):
                async with event_client(engine.event_port, since=since) as late:
                    catch_ups.append(await events_until(late, engine.core.last_seq + 100))
        assert_gapless(catch_ups[0], 1)
        assert_gapless(catch_ups[1], 151)


async def test_invalid_first_message_gets_an_error_and_close() -> None:
    async with (
        running_engine() as engine,
        connect(f"ws://127.0.0.1:{engine.event_port}", proxy=None) as ws,
    ):
        client = WsClient(ws)
        await client.send({"type": "subscribe", "since": 1})
        error = await client.next()
        assert error["type"] == "error" and error["code"] == "invalid_message"
        assert await client.closed() == 1008


async def test_slow_subscriber_is_dropped_and_resumes_with_since() -> None:
    async with (
        running_engine(subscriber_buffer_limit=300) as engine,
        command_client(engine.command_port) as gateway,
    ):
        async with event_client(engine.event_port, since=0) as consumer:
            await gateway.submit("alice", order())  # one command's events exceed 300 bytes
            assert await consumer.closed() == 1013
        assert engine.stats.slow_disconnects["event"] == 1
        async with event_client(engine.event_port, since=0) as consumer:
            replayed = await events_until(consumer, engine.core.last_seq)
            assert_gapless(replayed, 1)


async def test_heartbeats_carry_the_last_seq() -> None:
    async with (
        running_engine(heartbeat_interval=0.05) as engine,
        command_client(engine.command_port) as gateway,
    ):
        await gateway.submit("alice", order())
        async with event_client(engine.event_port, since=engine.core.last_seq) as consumer:
            beat = await consumer.expect("heartbeat")
            assert beat["last_seq"] == engine.core.last_seq and beat["ts"] > 0


# ---------------------------------------------------------------------- timers


async def test_mark_to_market_updates_reach_sessions() -> None:
    config = config_with(engine={"mark_interval_ms": 50})
    async with (
        running_engine(config) as engine,
        running_gateway(engine_url(engine), config) as gateway,
        gateway_client(gateway.port, "alice-key") as alice,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        await bob.send(order("sell", 2, 190.0))
        await bob.next()
        await alice.send(order("buy", 2, 190.0))
        bought = await alice.expect("account_update")
        assert bought["unrealized_pnl"] == 0.0
        # a bid and an ask from bob move the mid (the mark) without touching alice
        await bob.send(order("buy", 1, 195.0), order("sell", 1, 197.0))
        marked = await alice.expect("account_update")
        assert marked["positions"][0]["mark_px"] == 196.0
        assert marked["unrealized_pnl"] == 12.0


async def test_a_gtd_order_expires_by_itself_with_the_clock_timer(tmp_path: Path) -> None:
    config = config_with(engine={"clock_interval_ms": 20})
    async with (
        running_engine(config, data_dir=tmp_path) as engine,
        running_gateway(engine_url(engine), config) as gateway,
        gateway_client(gateway.port, "alice-key") as alice,
    ):
        expire_at = time.time_ns() + 300_000_000
        await alice.send(order("buy", 2, 184.0, tif="gtd", expire_at=expire_at))
        new = await alice.expect("execution_report")
        assert (new["exec_type"], new["tif"], new["expire_at"]) == ("new", "gtd", expire_at)
        assert engine.core.next_deadline() == expire_at
        expired = await asyncio.wait_for(alice.expect("execution_report"), 5)
        assert (expired["exec_type"], expired["status"], expired["reject_reason"]) == (
            "expired",
            "expired",
            "gtd_expired",
        )
        assert expired["order_id"] == new["order_id"] and expired["expire_at"] == expire_at
        assert expired["ts"] >= expire_at and expired["leaves_qty"] == 0
        assert engine.core.next_deadline() is None
        assert engine.stats.commands["AdvanceTime"] == 1
        await alice.send({"type": "get_orders"})
        assert (await alice.expect("orders"))["orders"] == []
        await alice.send(order("buy", 1, 184.0, tif="gtd", expire_at=expire_at))
        late = await alice.expect("execution_report")
        assert (late["exec_type"], late["reject_reason"]) == ("rejected", "invalid_order")
        state, last = engine.core.state_hash(), engine.core.last_seq
    async with running_engine(config, data_dir=tmp_path) as restarted:
        assert restarted.core.state_hash() == state and restarted.core.last_seq == last


# ---------------------------------------------------------------------- health and metrics


async def test_healthz_and_metrics_on_every_port() -> None:
    async with (
        running_engine() as engine,
        running_gateway(engine_url(engine)) as gateway,
        gateway_client(gateway.port, "alice-key") as alice,
    ):
        await alice.send(order(), order(price=1.0))
        await alice.next()
        assert (await alice.next())["reject_reason"] == "price_band"
        for port in (engine.command_port, engine.event_port, gateway.port):
            status, body = await http_get(port, "/healthz")
            assert status == 200 and b"ok" in body
        for port in (engine.command_port, engine.event_port):
            status, body = await http_get(port, "/metrics")
            text = body.decode()
            assert status == 200
            assert "engine_orders_total 1.0" in text
            assert 'engine_rejects_total{reason="price_band"} 1.0' in text
            assert 'engine_connections{port="command"} 1.0' in text
            assert 'engine_queue_bytes{port="event"}' in text
            assert "engine_command_latency_seconds_count" in text
        status, body = await http_get(gateway.port, "/metrics")
        text = body.decode()
        assert 'gateway_requests_total{type="new_order"} 2.0' in text
        assert "gateway_engine_up 1.0" in text
        assert "gateway_sessions_logged_in 1.0" in text
        assert (await http_get(gateway.port, "/nope"))[0] == 404


@pytest.mark.parametrize("fsync", ["batch", "always", "none"])
async def test_every_fsync_policy_acknowledges_in_order_and_restarts_identically(
    tmp_path: Path, fsync: str
) -> None:
    """Two gateways trade concurrently while a consumer watches: replies and events come
    back gapless and in order whatever the policy, and a restart from the data directory
    rebuilds exactly the state that was acknowledged."""
    async with running_engine(data_dir=tmp_path, fsync=fsync) as engine:
        rng = random.Random(7)
        acked: list[int] = []

        async def flow(client: CommandClient, account: str) -> None:
            for _ in range(150):
                reply = await client.submit(account, random_order(rng, 184.0, 186.0))
                seqs = [m["seq"] for m in reply["messages"] if "seq" in m]
                assert seqs == sorted(seqs)
                acked.extend(seqs)

        async with (
            event_client(engine.event_port, since=0) as watcher,
            command_client(engine.command_port) as first,
            command_client(engine.command_port) as second,
        ):
            await asyncio.gather(flow(first, "maker1"), flow(second, "maker2"))
            last = engine.core.last_seq
            assert_gapless(await events_until(watcher, last), 1)
        assert len(set(acked)) == len(acked) and max(acked) <= last  # + timer revalues
        if fsync == "always":  # (sharing of fsyncs is asserted in test_group_commit.py)
            assert engine.committer.syncs > 0  # type: ignore[attr-defined]
        state = engine.core.state_hash()
    async with running_engine(data_dir=tmp_path, fsync=fsync) as restarted:
        assert restarted.core.last_seq == last
        assert restarted.core.state_hash() == state
