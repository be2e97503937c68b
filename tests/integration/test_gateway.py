"""The gateway against a real in-process engine, over real sockets (PROTOCOL §2, §3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from exchange.engine import EngineApp
from exchange.protocol.config import SystemConfig
from gateway.server import GatewayApp
from tests.integration.clients import (
    config_with,
    engine_url,
    gateway_client,
    http_get,
    running_engine,
    running_gateway,
)


@asynccontextmanager
async def system(
    config: SystemConfig | None = None, **gateway_kwargs: Any
) -> AsyncIterator[tuple[EngineApp, GatewayApp]]:
    async with (
        running_engine(config) as engine,
        running_gateway(engine_url(engine), config, **gateway_kwargs) as gateway,
    ):
        yield engine, gateway


def order(
    side: str = "buy", qty: int = 1, price: float | None = 180.0, **fields: object
) -> dict[str, object]:
    message: dict[str, object] = {
        "type": "new_order",
        "symbol": "AAPL",
        "side": side,
        "qty": qty,
        **fields,
    }
    if price is not None:
        message["price"] = price
    return message


# ---------------------------------------------------------------------- authentication


async def test_login_by_header_greets_with_limits() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        greeting = client.greeting
        assert greeting is not None and greeting["type"] == "logged_in"
        assert greeting["account"] == "alice" and greeting["req_id"] is None
        assert greeting["limits"] == {
            "orders_per_second": 200.0,
            "burst": 400,
            "max_open_orders": 200,
        }
        await client.send({"type": "get_account", "req_id": 1})
        account = await client.next()
        assert account["type"] == "account" and account["account"] == "alice"
        assert account["req_id"] == 1


async def test_login_by_message_echoes_req_id_and_rejects_a_second_login() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        await client.send({"type": "login", "api_key": "bob-key", "req_id": "l1"})
        reply = await client.next()
        assert reply["type"] == "logged_in" and reply["account"] == "bob"
        assert reply["req_id"] == "l1" and reply["limits"]["max_open_orders"] == 200
        await client.send({"type": "login", "api_key": "alice-key", "req_id": 2})
        again = await client.next()
        assert again["type"] == "error" and again["code"] == "already_logged_in"
        assert again["ref"] == 2


async def test_bad_api_key_by_message_keeps_the_connection_open() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        await client.send({"type": "login", "api_key": "nope", "req_id": 7})
        failure = await client.next()
        assert failure["type"] == "error" and failure["code"] == "auth_failed"
        assert failure["ref"] == 7
        await client.send({"type": "get_orders"})
        assert (await client.next())["code"] == "not_logged_in"
        await client.send({"type": "login", "api_key": "carol-key"})
        assert (await client.next())["account"] == "carol"


async def test_bad_api_key_in_header_is_refused_with_401() -> None:
    async with system() as (_, gateway):
        for value in ("Bearer nope", "Basic YWxpY2U6eA==", "Bearer "):
            with pytest.raises(InvalidStatus) as refused:
                async with gateway_client(
                    gateway.port, additional_headers={"Authorization": value}
                ):
                    pass
            assert refused.value.response.status_code == 401
            body = json.loads(refused.value.response.body)
            assert body["type"] == "error" and body["code"] == "auth_failed"


async def test_everything_but_ping_needs_login() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        await client.send({"type": "ping", "req_id": 1})
        pong = await client.next()
        assert pong["type"] == "pong" and pong["req_id"] == 1 and pong["ts"] > 0
        for message in (
            order(client_order_id="c1"),
            {"type": "cancel_order", "order_id": 1, "req_id": "r"},
            {"type": "get_account"},
        ):
            await client.send(message)
            reply = await client.next()
            assert reply["type"] == "error" and reply["code"] == "not_logged_in"


async def test_not_logged_in_error_refs() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        await client.send(
            order(client_order_id="c1", req_id=5),
            {"type": "cancel_order", "order_id": 1, "req_id": "r"},
            {"type": "get_account"},
        )
        refs = [(await client.next())["ref"] for _ in range(3)]
        assert refs == ["c1", "r", None]


# ---------------------------------------------------------------------- register


async def test_register_logs_in_and_the_account_trades() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        await client.send({"type": "register", "account": "bot7", "cash": 50_000, "req_id": 1})
        registered = await client.next()
        assert registered["type"] == "registered" and registered["account"] == "bot7"
        assert registered["req_id"] == 1 and len(registered["api_key"]) >= 20
        assert registered["limits"]["burst"] == 400
        update = await client.next()
        assert update["type"] == "account_update" and update["cash"] == 50_000.0
        await client.send(order(qty=2, req_id=2))
        report = await client.next()
        assert report["exec_type"] == "new" and report["account"] == "bot7"
        # the new key logs in from another connection
        async with gateway_client(gateway.port, registered["api_key"]) as again:
            await again.send({"type": "get_orders", "req_id": 3})
            orders = await again.next()
            assert [o["order_id"] for o in orders["orders"]] == [report["order_id"]]


async def test_register_refusals() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        cases = [
            ({"account": "alice", "cash": 1000}, "account_exists"),
            ({"account": "x", "cash": 0}, "invalid_message"),
            ({"account": "x", "cash": 100_000.01}, "invalid_message"),
            ({"account": "", "cash": 10}, "invalid_message"),
            ({"account": "bad name", "cash": 10}, "invalid_message"),
        ]
        for fields, code in cases:
            await client.send({"type": "register", "req_id": code, **fields})
            reply = await client.next()
            assert reply["type"] == "error" and reply["code"] == code, (fields, reply)
            assert reply["ref"] == code
        await client.send({"type": "register", "account": "fine", "cash": 1})
        assert (await client.next())["type"] == "registered"
        await client.send({"type": "register", "account": "other", "cash": 1})
        await client.expect("error", code="already_logged_in")


async def test_register_disabled() -> None:
    config = config_with(gateway={"allow_register": False})
    async with system(config) as (_, gateway), gateway_client(gateway.port) as client:
        await client.send({"type": "register", "account": "bot7", "cash": 10})
        reply = await client.next()
        assert reply["type"] == "error" and reply["code"] == "register_disabled"


# ---------------------------------------------------------------------- requests


async def test_each_request_type() -> None:
    async with (
        system() as (_, gateway),
        gateway_client(gateway.port, "alice-key") as alice,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        await alice.send(order("buy", 5, 180.0, client_order_id="a1", req_id=1))
        new = await alice.next()
        assert (new["exec_type"], new["status"], new["req_id"]) == ("new", "new", 1)
        assert new["seq"] > 0 and new["client_order_id"] == "a1" and new["leaves_qty"] == 5
        order_id = new["order_id"]

        await alice.send({"type": "amend_order", "client_order_id": "a1", "qty": 3, "req_id": 2})
        replaced = await alice.next()
        assert replaced["exec_type"] == "replaced" and replaced["qty"] == 3
        assert replaced["req_id"] == 2

        await alice.send({"type": "get_orders", "symbol": "AAPL", "req_id": 3})
        orders = await alice.next()
        assert orders["type"] == "orders" and orders["req_id"] == 3
        assert [(o["order_id"], o["qty"]) for o in orders["orders"]] == [(order_id, 3)]
        await alice.send({"type": "get_orders", "symbol": "MSFT"})
        assert (await alice.next())["orders"] == []

        # bob sells into alice's bid: a market order; alice's fill arrives without req_id
        await bob.send(order("sell", 2, None, order_type="market", req_id="m"))
        bob_new = await bob.next()
        assert bob_new["exec_type"] == "new" and bob_new["tif"] == "ioc"
        bob_trade = await bob.expect("execution_report", exec_type="trade")
        assert bob_trade["liquidity"] == "taker" and bob_trade["last_qty"] == 2
        alice_trade = await alice.expect("execution_report", exec_type="trade")
        assert alice_trade["req_id"] is None and alice_trade["liquidity"] == "maker"
        assert alice_trade["cum_qty"] == 2 and alice_trade["leaves_qty"] == 1
        await alice.expect("account_update", account="alice")

        await alice.send({"type": "get_account", "req_id": 4})
        account = await alice.expect("account")
        assert account["req_id"] == 4
        assert account["positions"][0]["symbol"] == "AAPL"
        assert account["positions"][0]["qty"] == 2

        await alice.send({"type": "cancel_order", "order_id": order_id, "req_id": 5})
        canceled = await alice.expect("execution_report")
        assert canceled["exec_type"] == "canceled" and canceled["req_id"] == 5

        await alice.send({"type": "cancel_order", "order_id": order_id, "req_id": 6})
        too_late = await alice.next()
        assert too_late["type"] == "cancel_reject" and too_late["reject_reason"] == "too_late"
        assert too_late["status"] == "canceled" and too_late["client_order_id"] == "a1"

        await alice.send(order("buy", 1, 181.0, req_id=7), order("buy", 1, 182.0, req_id=8))
        await alice.next()
        await alice.next()
        await alice.send({"type": "cancel_all", "req_id": 9})
        reports = [await alice.next() for _ in range(3)]
        assert [r["exec_type"] for r in reports[:2]] == ["canceled", "canceled"]
        assert reports[2]["type"] == "cancel_all_done" and reports[2]["canceled"] == 2
        assert reports[2]["req_id"] == 9


async def test_unknown_fields_malformed_json_and_refs() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send(order(client_order_id="c9", req_id=1, colour="red"))
        error = await client.next()
        assert error["type"] == "error" and error["code"] == "invalid_message"
        assert "colour" in error["text"] and error["ref"] == "c9" and error["req_id"] == 1
        await client.send({"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": "x"})
        error = await client.next()
        assert error["text"] == "Expected `int`, got `str` - at `$.qty`"
        assert error["ref"] is None
        await client.send_raw('{"type": "ping", ')
        error = await client.next()
        assert error["code"] == "invalid_message" and error["ref"] is None
        await client.send({"type": "get_orders", "req_id": 2})
        assert (await client.next())["type"] == "orders"


async def test_core_errors_and_business_rejects_reach_the_requester() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send(order(price=180.005, client_order_id="p", req_id=1))
        rejected = await client.next()
        assert rejected["exec_type"] == "rejected" and rejected["reject_reason"] == "invalid_price"
        assert rejected["req_id"] == 1 and rejected["order_id"] is None
        await client.send(order(price=180.0, order_type="market", req_id=2))
        error = await client.next()
        assert error["type"] == "error" and error["code"] == "invalid_message"
        assert error["ref"] == 2


async def test_batches_are_handled_member_by_member() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send(
            order(qty=1, req_id=1),
            {"type": "new_order", "symbol": "AAPL", "side": "up", "qty": 1, "req_id": 2},
            {"type": "ping", "req_id": 3},
            order(qty=2, req_id=4),
        )
        frame = await client.frame()
        assert isinstance(frame, list)
        assert [(m["type"], m["req_id"] if m["type"] != "error" else m["ref"]) for m in frame] == [
            ("execution_report", 1),
            ("error", 2),
            ("pong", 3),
            ("execution_report", 4),
        ]
        await client.send_raw("[]")
        empty = await client.next()
        assert empty["code"] == "invalid_message" and empty["text"] == "Empty batch"
        # a batch before login: the login applies to the members after it
        async with gateway_client(gateway.port) as fresh:
            await fresh.send(
                {"type": "get_orders", "req_id": 1},
                {"type": "login", "api_key": "bob-key"},
                {"type": "get_orders", "req_id": 2},
            )
            replies = [await fresh.next() for _ in range(3)]
            assert [r["type"] for r in replies] == ["error", "logged_in", "orders"]


async def test_reports_reach_every_session_of_the_account() -> None:
    async with (
        system() as (_, gateway),
        gateway_client(gateway.port, "alice-key") as first,
        gateway_client(gateway.port, "alice-key", login=True) as second,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        await first.send(order("buy", 3, 180.0, client_order_id="x", req_id="mine"))
        new = await first.next()
        copy = await second.next()
        assert copy["order_id"] == new["order_id"] and copy["exec_type"] == "new"
        assert copy["req_id"] is None  # not a direct reply to the second session
        await bob.send(order("sell", 3, 180.0))
        for session in (first, second):
            fill = await session.expect("execution_report", exec_type="trade")
            assert fill["status"] == "filled"
            await session.expect("account_update", account="alice")
        # replies that belong to a request go to the requesting session only
        await second.send({"type": "cancel_order", "order_id": new["order_id"], "req_id": 1})
        assert (await second.next())["type"] == "cancel_reject"
        await second.send({"type": "get_account"})
        assert (await second.next())["type"] == "account"
        assert await first.sync() == []
        assert not [m for m in await bob.sync() if m.get("account") == "alice"]


async def test_another_account_cannot_cancel_or_see_your_orders() -> None:
    async with (
        system() as (_, gateway),
        gateway_client(gateway.port, "alice-key") as alice,
        gateway_client(gateway.port, "bob-key") as bob,
    ):
        await alice.send(order("buy", 1, 175.0, client_order_id="secret"))
        order_id = (await alice.next())["order_id"]
        await bob.sync()
        await bob.send({"type": "cancel_order", "order_id": order_id, "req_id": 1})
        reject = await bob.next()
        assert reject["type"] == "cancel_reject" and reject["reject_reason"] == "unknown_order"
        assert reject["status"] is None
        await bob.send({"type": "cancel_order", "client_order_id": "secret"})
        assert (await bob.next())["reject_reason"] == "unknown_order"
        await bob.send({"type": "amend_order", "order_id": order_id, "qty": 5})
        assert (await bob.next())["reject_reason"] == "unknown_order"
        await bob.send({"type": "get_orders"})
        assert (await bob.next())["orders"] == []
        await bob.send({"type": "cancel_all"})
        done = await bob.next()
        assert done["type"] == "cancel_all_done" and done["canceled"] == 0
        assert await alice.sync() == []
        await alice.send({"type": "get_orders"})
        assert [o["order_id"] for o in (await alice.next())["orders"]] == [order_id]


# ---------------------------------------------------------------------- framing limits


async def test_numbers_out_of_range_are_rejected_before_the_engine() -> None:
    async with system() as (engine, gateway), gateway_client(gateway.port, "alice-key") as client:
        seq = engine.sequencer.core.last_seq
        for fields, reason, echoed in (
            ({"qty": 2**64}, "invalid_qty", 0),  # no reply could carry 2^64: echoed as 0
            ({"qty": 2**53}, "invalid_qty", 2**53),
            ({"price": 1e308}, "invalid_price", 1),
        ):
            message = {**order(req_id="r"), **fields}
            await client.send(message)
            rejected = await client.next()
            assert (rejected["exec_type"], rejected["reject_reason"]) == ("rejected", reason)
            assert (rejected["req_id"], rejected["seq"], rejected["qty"]) == ("r", None, echoed)
        await client.send({"type": "amend_order", "order_id": 7, "price": 1e308, "req_id": 2})
        reject = await client.next()
        assert (reject["type"], reject["reject_reason"]) == ("cancel_reject", "invalid_price")
        assert engine.sequencer.core.last_seq == seq  # the engine never saw them
        await client.send(order(req_id=3))
        assert (await client.next())["exec_type"] == "new"  # the link is as it was


async def test_deep_nesting_is_an_invalid_message_and_the_connection_stays() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        for depth in (33, 1_000, 3_000):
            await client.send_raw("[" * depth + "]" * depth)
            error = await client.next()
            assert error["code"] == "invalid_message" and "nested deeper" in error["text"]
        deep_field = '{"type":"get_orders","req_id":9,"symbol":' + "[" * 2000 + "]" * 2000 + "}"
        await client.send_raw(deep_field)
        assert (await client.next())["code"] == "invalid_message"
        await client.send({"type": "ping", "req_id": 4})
        assert (await client.next())["type"] == "pong"


async def test_binary_frame_is_an_invalid_message() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send_raw(b'{"type":"ping"}')
        error = await client.next()
        assert error["type"] == "error" and error["code"] == "invalid_message"
        assert (await client.sync()) == []


async def test_oversized_frame_closes_1009() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send_raw('{"type":"ping","req_id":"' + "x" * 70_000 + '"}')
        assert await client.closed() == 1009


async def test_invalid_utf8_closes_1007() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port) as client:
        await client.ws.send(b'{"type":"ping","req_id":"\xff"}', text=True)
        assert await client.closed() == 1007


async def test_invalid_message_flood_closes_1008_but_rejects_do_not_count() -> None:
    config = config_with(gateway={"burst": 1, "orders_per_second": 0.001})
    async with system(config) as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        # 150 business rejects (rate limited) do not count
        await client.send(*[order(price=100.0) for _ in range(150)])
        replies = [await client.next() for _ in range(150)]
        assert {r["reject_reason"] for r in replies[1:]} == {"rate_limited"}
        await client.send(*[{"type": "nonsense"} for _ in range(100)])
        assert len([await client.next() for _ in range(100)]) == 100
        assert await client.sync() == []
        await client.send_raw("not json")
        assert await client.closed() == 1008


# ---------------------------------------------------------------------- rate limits


async def test_rate_limit_rejects_with_retry_after() -> None:
    config = config_with(gateway={"burst": 3, "orders_per_second": 0.01})
    async with system(config) as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send(*[order(price=175.0 + i, req_id=i) for i in range(4)])
        replies = [await client.next() for _ in range(4)]
        assert [r["exec_type"] for r in replies] == ["new", "new", "new", "rejected"]
        limited = replies[3]
        assert limited["reject_reason"] == "rate_limited" and limited["seq"] is None
        assert limited["req_id"] == 3 and 0 < limited["retry_after_ms"] <= 100_000
        assert limited["ts"] > 0 and limited["account"] == "alice"
        await client.send({"type": "cancel_order", "order_id": 1, "req_id": "c"})
        reject = await client.next()
        assert reject["type"] == "cancel_reject" and reject["reject_reason"] == "rate_limited"
        assert reject["request"] == "cancel" and reject["retry_after_ms"] > 0
        assert reject["seq"] is None and reject["req_id"] == "c"
        await client.send({"type": "amend_order", "order_id": 1, "qty": 1})
        assert (await client.next())["request"] == "amend"
        await client.send({"type": "get_account", "req_id": "g"})
        error = await client.next()
        assert error["type"] == "error" and error["code"] == "rate_limited"
        assert error["ref"] == "g" and error["retry_after_ms"] > 0
        # ping is never limited
        await client.send({"type": "ping"})
        assert (await client.next())["type"] == "pong"
        # the bucket is the account's: a second session shares it
        async with gateway_client(gateway.port, "alice-key") as other:
            await other.send({"type": "get_orders"})
            assert (await other.next())["code"] == "rate_limited"


# ---------------------------------------------------------------------- cancel on disconnect


async def test_cancel_on_disconnect() -> None:
    async with (
        system() as (_, gateway),
        gateway_client(gateway.port, "alice-key") as watcher,
    ):
        async with gateway_client(gateway.port) as session:
            await session.send(
                {"type": "login", "api_key": "alice-key", "cancel_on_disconnect": True}
            )
            assert (await session.next())["type"] == "logged_in"
            await session.send(order("buy", 1, 175.0), order("buy", 1, 176.0))
            await session.next()
            await session.next()
        canceled = [
            await watcher.expect("execution_report", exec_type="canceled") for _ in range(2)
        ]
        assert sorted(r["price"] for r in canceled) == [175.0, 176.0]
        # by header, with the URL option
        async with gateway_client(
            gateway.port, "alice-key", path="/?cancel_on_disconnect=true"
        ) as session:
            await session.send(order("buy", 1, 177.0))
            await session.next()
        assert (await watcher.expect("execution_report", exec_type="canceled"))["price"] == 177.0
        # without the option orders stay
        async with gateway_client(gateway.port, "alice-key", login=True) as session:
            await session.send(order("buy", 1, 178.0))
            await session.next()
        await watcher.send({"type": "get_orders"})
        orders = await watcher.expect("orders")
        assert [o["price"] for o in orders["orders"]] == [178.0]


# ---------------------------------------------------------------------- HTTP


async def test_healthz_metrics_and_unknown_paths() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        await client.send(order(req_id=1), {"type": "nonsense"})
        assert (await client.next())["exec_type"] == "new"
        assert (await client.next())["code"] == "invalid_message"
        status, body = await http_get(gateway.port, "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, body = await http_get(gateway.port, "/metrics")
        text = body.decode()
        assert status == 200
        assert 'gateway_requests_total{type="new_order"} 1.0' in text
        assert 'gateway_requests_total{type="invalid"} 1.0' in text
        assert "gateway_connections 1.0" in text and "gateway_sessions_logged_in 1.0" in text
        assert "gateway_engine_up 1.0" in text and "gateway_engine_in_flight 0.0" in text
        assert "gateway_client_queued_bytes 0.0" in text
        assert "gateway_engine_latency_seconds_count" in text
        status, body = await http_get(gateway.port, "/nope")
        assert status == 404 and json.loads(body)["code"] == "not_found"
