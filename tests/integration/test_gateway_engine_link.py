"""The gateway's link to the engine: engine down, requests in flight, engine restart, several
gateways side by side."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from tests.integration.clients import (
    engine_url,
    gateway_client,
    http_get,
    running_engine,
    running_gateway,
)
from tests.support import seconds


def order(side: str = "buy", qty: int = 1, price: float = 180.0, **fields: Any) -> dict[str, Any]:
    return {
        "type": "new_order",
        "symbol": "AAPL",
        "side": side,
        "qty": qty,
        "price": price,
        **fields,
    }


async def assert_engine_unavailable_replies(client: Any) -> None:
    """Every order-entry request type is answered at once without the engine."""
    await client.send(
        order(client_order_id="c1", req_id=1),
        {"type": "cancel_order", "order_id": 7, "req_id": 2},
        {"type": "amend_order", "client_order_id": "c1", "qty": 2, "req_id": 3},
        {"type": "cancel_all", "req_id": 4},
        {"type": "get_account", "req_id": 5},
        {"type": "get_orders", "req_id": 6},
        {"type": "ping", "req_id": 7},
    )
    replies = [await client.next() for _ in range(7)]
    report, cancel, amend, cancel_all, account, orders, pong = replies
    assert report["type"] == "execution_report" and report["exec_type"] == "rejected"
    assert report["reject_reason"] == "engine_unavailable" and report["seq"] is None
    assert report["req_id"] == 1 and report["client_order_id"] == "c1"
    assert cancel["type"] == "cancel_reject" and cancel["reject_reason"] == "engine_unavailable"
    assert (cancel["request"], cancel["order_id"], cancel["req_id"]) == ("cancel", 7, 2)
    assert amend["request"] == "amend" and amend["reject_reason"] == "engine_unavailable"
    assert amend["client_order_id"] == "c1" and amend["seq"] is None
    for error, ref in ((cancel_all, 4), (account, 5), (orders, 6)):
        assert error["type"] == "error" and error["code"] == "engine_unavailable"
        assert error["ref"] == ref
    assert pong["type"] == "pong"


async def test_engine_down_answers_at_once_and_restart_reconnects() -> None:
    async with (
        running_engine() as engine,
        running_gateway(engine_url(engine)) as gateway,
        gateway_client(gateway.port, "alice-key") as client,
    ):
        port = engine.command_port
        await client.send(order(qty=2, req_id="before"))
        before = await client.next()
        assert before["exec_type"] == "new"
        await engine.stop()
        await asyncio.wait_for(gateway.link.wait_down(), seconds(5))
        assert (await http_get(gateway.port, "/healthz"))[0] == 503
        await assert_engine_unavailable_replies(client)
        # login of a new session while the engine is down
        async with gateway_client(gateway.port) as other:
            await other.send({"type": "login", "api_key": "bob-key", "req_id": 1})
            reply = await other.next()
            assert reply["code"] == "engine_unavailable" and reply["ref"] == 1

        # the engine comes back on the same port: the session is still open
        async with running_engine(command_port=port) as again:
            assert again.command_port == port
            await asyncio.wait_for(gateway.link.wait_up(), seconds(5))
            await client.send(order(qty=1, req_id="after"))
            after = await client.next()
            assert after["exec_type"] == "new" and after["req_id"] == "after"
            assert (await http_get(gateway.port, "/healthz"))[0] == 200


async def test_requests_in_flight_when_the_link_drops_are_answered() -> None:
    """A fake engine that never answers, then drops the connection."""
    received = asyncio.Event()
    connections: list[ServerConnection] = []
    authenticated = asyncio.Event()

    async def fake_engine(ws: ServerConnection) -> None:
        connections.append(ws)
        async for frame in ws:
            data = json.loads(frame)
            for envelope in data if isinstance(data, list) else [data]:
                if envelope["type"] == "authenticate":
                    answer = {
                        "type": "logged_in",
                        "account": "alice",
                        "limits": {"orders_per_second": 100, "burst": 100, "max_open_orders": 5},
                    }
                    reply = {"type": "reply", "id": envelope["id"], "messages": [answer]}
                    await ws.send(json.dumps([reply]))
                    authenticated.set()
                else:
                    received.set()

    async with serve(fake_engine, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with (
            running_gateway(f"ws://127.0.0.1:{port}") as gateway,
            gateway_client(gateway.port, "alice-key") as client,
        ):
            await client.send(
                order(req_id=1),
                {"type": "cancel_order", "order_id": 3, "req_id": 2},
                {"type": "get_orders", "req_id": 3},
                {"type": "ping", "req_id": 4},
            )
            await asyncio.wait_for(received.wait(), seconds(5))
            assert gateway.link.in_flight == 3
            await connections[-1].close()
            replies = [await client.next() for _ in range(4)]
            assert [r["type"] for r in replies] == [
                "execution_report",
                "cancel_reject",
                "error",
                "pong",
            ]
            assert replies[0]["reject_reason"] == "engine_unavailable"
            assert replies[1]["reject_reason"] == "engine_unavailable"
            assert replies[2]["code"] == "engine_unavailable" and replies[2]["ref"] == 3
            assert gateway.link.in_flight == 0


async def test_gateway_starts_before_the_engine() -> None:
    async with running_engine() as probe:
        port = probe.command_port
    async with (
        running_gateway(f"ws://127.0.0.1:{port}", wait_up=False) as gateway,
        gateway_client(gateway.port) as client,
    ):
        await client.send({"type": "login", "api_key": "alice-key"})
        assert (await client.next())["code"] == "engine_unavailable"
        async with running_engine(command_port=port):
            await asyncio.wait_for(gateway.link.wait_up(), seconds(5))
            await client.send({"type": "login", "api_key": "alice-key"})
            assert (await client.next())["type"] == "logged_in"


async def test_several_gateways_side_by_side() -> None:
    async with (
        running_engine() as engine,
        running_gateway(engine_url(engine)) as first,
        running_gateway(engine_url(engine)) as second,
        gateway_client(first.port, "alice-key") as alice,
        gateway_client(second.port, "alice-key") as alice_elsewhere,
        gateway_client(second.port, "bob-key") as bob,
    ):
        await bob.send(order("sell", 4, 185.0, req_id="b"))
        resting = await bob.next()
        assert resting["exec_type"] == "new"
        await alice.send(order("buy", 3, 185.0, req_id="a"))
        new = await alice.next()
        assert new["req_id"] == "a"
        # the same account on the other gateway sees the order, without the req_id
        copy = await alice_elsewhere.expect("execution_report", exec_type="new")
        assert copy["order_id"] == new["order_id"] and copy["req_id"] is None
        # bob's resting order was filled by a request that came through the other gateway
        fill = await bob.expect("execution_report", exec_type="trade")
        assert fill["order_id"] == resting["order_id"] and fill["last_qty"] == 3
        assert fill["liquidity"] == "maker" and fill["req_id"] is None
        await bob.expect("account_update", account="bob")
        await alice_elsewhere.expect("execution_report", exec_type="trade")
        await alice_elsewhere.expect("account_update", account="alice")
        # direct replies stay with the requester
        await alice.send({"type": "cancel_order", "order_id": new["order_id"]})
        assert (await alice.expect("cancel_reject"))["reject_reason"] == "too_late"
        assert [m["type"] for m in await alice_elsewhere.sync()] == []


async def test_gateway_shutdown_cancels_cancel_on_disconnect_orders() -> None:
    async with (
        running_engine() as engine,
        running_gateway(engine_url(engine)) as survivor,
        gateway_client(survivor.port, "alice-key") as watcher,
    ):
        async with contextlib.AsyncExitStack() as clients:
            # the session outlives its gateway: stop() is what closes it
            async with running_gateway(engine_url(engine)) as leaving:
                session = await clients.enter_async_context(
                    gateway_client(leaving.port, "alice-key", path="/?cancel_on_disconnect=true")
                )
                await session.send(order("buy", 1, 184.0))
                assert (await session.next())["exec_type"] == "new"
                await watcher.expect("execution_report", exec_type="new")
            assert await session.closed() == 1001
        # the leaving gateway's stop sent the cancel before it returned
        canceled = await watcher.expect("execution_report", exec_type="canceled")
        assert canceled["price"] == 184.0
