"""REST order entry on the gateway's REST port (PROTOCOL §6), on real sockets (port 0):
every endpoint and status code, the same accounts, checks and shapes as the WebSocket path,
one rate limit per account shared with the WebSocket sessions, 503 with the engine down, and
a client that sends too much or the wrong thing never disturbing the gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from exchange.engine import EngineApp
from exchange.protocol.config import SystemConfig
from gateway.server import GatewayApp
from tests.integration.clients import (
    DEFAULT_TIMEOUT,
    config_with,
    engine_url,
    gateway_client,
    running_engine,
    running_gateway,
)
from tests.support import seconds

Json = dict[str, Any]


@asynccontextmanager
async def system(
    config: SystemConfig | None = None,
) -> AsyncIterator[tuple[EngineApp, GatewayApp]]:
    async with (
        running_engine(config) as engine,
        running_gateway(engine_url(engine), config, rest_port=0) as gateway,
    ):
        yield engine, gateway


async def http(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = "alice-key",
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 request (``Connection: close``); returns status, headers (lower-case
    names) and the body decoded as JSON (text when it is not JSON)."""

    async def fetch() -> tuple[int, dict[str, str], Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if data or method in ("POST", "PATCH"):
            head += f"Content-Length: {len(data)}\r\nContent-Type: application/json\r\n"
        if key is not None:
            head += f"Authorization: Bearer {key}\r\n"
        writer.write(head.encode() + b"\r\n" + data)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        top, _, payload = answer.partition(b"\r\n\r\n")
        lines = top.decode().split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            decoded: Any = json.loads(payload)
        except ValueError:
            decoded = payload.decode()
        return status, headers, decoded

    return await asyncio.wait_for(fetch(), seconds(DEFAULT_TIMEOUT))


def order(side: str = "buy", qty: int = 1, price: float | None = 180.0, **fields: Any) -> Json:
    body: Json = {"symbol": "AAPL", "side": side, "qty": qty, **fields}
    if price is not None:
        body["price"] = price
    return body


def exec_types(result: Json) -> list[str]:
    return [report["exec_type"] for report in result["reports"]]


# ---------------------------------------------------------------------- orders


async def test_post_order_and_a_fill_returns_every_report_at_once() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        status, _, resting = await http(port, "POST", "/api/v1/orders", order(qty=2))
        assert status == 200 and resting["type"] == "order_result"
        assert exec_types(resting) == ["new"]
        report = resting["reports"][0]
        assert report["account"] == "alice" and report["leaves_qty"] == 2 and report["seq"]
        taker = order("sell", 5, 180.0, tif="ioc", type="new_order")
        status, _, result = await http(port, "POST", "/api/v1/orders", taker, key="bob-key")
        assert status == 200
        assert exec_types(result) == ["new", "trade", "expired"]
        assert result["reports"][1]["last_qty"] == 2
        assert all(r["account"] == "bob" for r in result["reports"])


async def test_rejected_order_is_400_with_the_report() -> None:
    async with system() as (_, gateway):
        status, _, result = await http(
            gateway.rest_port, "POST", "/api/v1/orders", order(symbol="NOPE")
        )
        assert status == 400 and result["type"] == "order_result"
        assert exec_types(result) == ["rejected"]
        assert result["reports"][0]["reject_reason"] == "unknown_symbol"
        status, _, result = await http(gateway.rest_port, "POST", "/api/v1/orders", order(qty=0))
        assert status == 400 and result["reports"][0]["reject_reason"] == "invalid_qty"
        big = order(qty=2**60)  # exchange.protocol.bounds: never reaches the engine
        status, _, result = await http(gateway.rest_port, "POST", "/api/v1/orders", big)
        assert status == 400 and result["reports"][0]["reject_reason"] == "invalid_qty"
        assert result["reports"][0]["seq"] is None


async def test_cancel_by_id_and_by_client_order_id() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        _, _, first = await http(port, "POST", "/api/v1/orders", order(client_order_id="c1"))
        _, _, second = await http(port, "POST", "/api/v1/orders", order(client_order_id="c2"))
        order_id = first["reports"][0]["order_id"]
        status, _, result = await http(port, "DELETE", f"/api/v1/orders/{order_id}")
        assert status == 200 and exec_types(result) == ["canceled"]
        assert result["reports"][0]["order_id"] == order_id
        status, _, result = await http(port, "DELETE", "/api/v1/orders?client_order_id=c2")
        assert status == 200 and exec_types(result) == ["canceled"]
        assert result["reports"][0]["order_id"] == second["reports"][0]["order_id"]
        # already done: 409 too_late with the final status
        status, _, reject = await http(port, "DELETE", f"/api/v1/orders/{order_id}")
        assert status == 409 and reject["type"] == "cancel_reject"
        assert reject["reject_reason"] == "too_late" and reject["status"] == "canceled"
        # unknown, and another account's order: 404 unknown_order
        status, _, reject = await http(port, "DELETE", "/api/v1/orders/999999")
        assert status == 404 and reject["reject_reason"] == "unknown_order"
        _, _, bobs = await http(
            port, "POST", "/api/v1/orders", order("sell", price=190.0), key="bob-key"
        )
        bob_id = bobs["reports"][0]["order_id"]
        status, _, reject = await http(port, "DELETE", f"/api/v1/orders/{bob_id}")
        assert status == 404 and reject["reject_reason"] == "unknown_order"
        assert reject["status"] is None


async def test_amend_by_patch() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        _, _, placed = await http(port, "POST", "/api/v1/orders", order(qty=5))
        order_id = placed["reports"][0]["order_id"]
        status, _, result = await http(port, "PATCH", f"/api/v1/orders/{order_id}", {"qty": 3})
        assert status == 200 and exec_types(result) == ["replaced"]
        assert result["reports"][0]["qty"] == 3
        body = {"type": "amend_order", "price": 180.5}
        status, _, result = await http(port, "PATCH", f"/api/v1/orders/{order_id}", body)
        assert status == 200 and result["reports"][0]["price"] == 180.5
        status, _, reject = await http(port, "PATCH", "/api/v1/orders/999999", {"qty": 1})
        assert status == 404 and reject["reject_reason"] == "unknown_order"
        status, _, reject = await http(port, "PATCH", f"/api/v1/orders/{order_id}", {"qty": -1})
        assert status == 400 and reject["type"] == "cancel_reject"
        assert reject["reject_reason"] == "invalid_qty"
        status, _, problem = await http(port, "PATCH", f"/api/v1/orders/{order_id}", {"side": 1})
        assert status == 400 and problem["code"] == "invalid_message"
        await http(port, "DELETE", f"/api/v1/orders/{order_id}")
        status, _, reject = await http(port, "PATCH", f"/api/v1/orders/{order_id}", {"qty": 1})
        assert status == 409 and reject["reject_reason"] == "too_late"


async def test_cancel_all_lists_the_reports() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        for price in (179.0, 179.5):
            await http(port, "POST", "/api/v1/orders", order(price=price))
        await http(port, "POST", "/api/v1/orders", order(symbol="MSFT", price=420.0))
        status, _, done = await http(port, "DELETE", "/api/v1/orders?symbol=AAPL")
        assert status == 200 and done["type"] == "cancel_all_done"
        assert done["canceled"] == 2 and done["symbol"] == "AAPL"
        assert [r["exec_type"] for r in done["reports"]] == ["canceled", "canceled"]
        status, _, done = await http(port, "DELETE", "/api/v1/orders")
        assert status == 200 and done["canceled"] == 1 and len(done["reports"]) == 1


async def test_get_orders_one_order_and_account() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        _, _, placed = await http(port, "POST", "/api/v1/orders", order(client_order_id="x"))
        order_id = placed["reports"][0]["order_id"]
        status, _, orders = await http(port, "GET", "/api/v1/orders?symbol=AAPL")
        assert status == 200 and orders["type"] == "orders"
        assert [o["order_id"] for o in orders["orders"]] == [order_id]
        status, _, orders = await http(port, "GET", "/api/v1/orders?symbol=MSFT")
        assert status == 200 and orders["orders"] == []
        status, _, live = await http(port, "GET", f"/api/v1/orders/{order_id}")
        assert status == 200 and live["type"] == "order" and live["live"] is True
        assert live["client_order_id"] == "x" and live["leaves_qty"] == 1
        await http(port, "DELETE", f"/api/v1/orders/{order_id}")
        status, _, done = await http(port, "GET", f"/api/v1/orders/{order_id}")
        assert status == 200 and done["live"] is False and done["status"] == "canceled"
        assert done["client_order_id"] == "x"
        status, _, missing = await http(port, "GET", "/api/v1/orders/424242")
        assert status == 404 and missing["code"] == "unknown_order"
        status, _, missing = await http(port, "GET", f"/api/v1/orders/{order_id}", key="bob-key")
        assert status == 404 and missing["code"] == "unknown_order"
        status, _, account = await http(port, "GET", "/api/v1/account")
        assert status == 200 and account["type"] == "account" and account["account"] == "alice"


async def test_rest_and_websocket_sessions_see_each_others_orders() -> None:
    async with system() as (_, gateway), gateway_client(gateway.port, "alice-key") as ws:
        port = gateway.rest_port
        _, _, placed = await http(port, "POST", "/api/v1/orders", order(req_id="r1"))
        copy = await ws.expect("execution_report", exec_type="new")
        assert copy["order_id"] == placed["reports"][0]["order_id"]
        assert copy["req_id"] is None  # the requester's req_id stays with the requester
        await ws.send({"type": "new_order", **order(price=179.0), "req_id": 7})
        mine = await ws.expect("execution_report", req_id=7)
        _, _, orders = await http(port, "GET", "/api/v1/orders")
        ids = {o["order_id"] for o in orders["orders"]}
        assert ids == {copy["order_id"], mine["order_id"]}
        # a later fill of the REST order reaches the WebSocket session
        taker = order("sell", 1, 180.0, tif="ioc")
        await http(port, "POST", "/api/v1/orders", taker, key="bob-key")
        fill = await ws.expect("execution_report", exec_type="trade")
        assert fill["order_id"] == copy["order_id"]


# ---------------------------------------------------------------------- limits and the engine


async def test_rate_limit_is_shared_with_websocket_sessions() -> None:
    config = config_with(gateway={"orders_per_second": 0.01, "burst": 2})
    async with system(config) as (_, gateway), gateway_client(gateway.port, "alice-key") as ws:
        for n in (1, 2):  # the account's two tokens, spent on the WebSocket
            await ws.send({"type": "get_account", "req_id": n})
            await ws.expect("account", req_id=n)
        port = gateway.rest_port
        status, headers, result = await http(port, "POST", "/api/v1/orders", order())
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert result["type"] == "order_result" and exec_types(result) == ["rejected"]
        assert result["reports"][0]["reject_reason"] == "rate_limited"
        assert result["reports"][0]["retry_after_ms"] >= 1
        status, headers, problem = await http(port, "GET", "/api/v1/account")
        assert status == 429 and problem["code"] == "rate_limited" and "retry-after" in headers
        status, _, problem = await http(port, "DELETE", "/api/v1/orders/1")
        assert status == 429 and problem["type"] == "error"
        assert problem["code"] == "rate_limited"
        # and the WebSocket session is limited by what REST spent too
        await ws.send({"type": "get_account", "req_id": 3})
        refused = await ws.expect("error", req_id=3)
        assert refused["code"] == "rate_limited"


async def test_engine_down_is_503() -> None:
    async with (
        running_engine() as engine,
        running_gateway(engine_url(engine), rest_port=0) as gateway,
    ):
        port = gateway.rest_port
        status, _, _ = await http(port, "GET", "/api/v1/account")  # the key is known
        assert status == 200
        await engine.stop()
        await asyncio.wait_for(gateway.link.wait_down(), seconds(DEFAULT_TIMEOUT))
        status, _, result = await http(port, "POST", "/api/v1/orders", order())
        assert status == 503 and result["type"] == "order_result"
        assert result["reports"][0]["reject_reason"] == "engine_unavailable"
        status, _, problem = await http(port, "GET", "/api/v1/account")
        assert status == 503 and problem["code"] == "engine_unavailable"
        status, _, problem = await http(port, "GET", "/api/v1/account", key="bob-key")
        assert status == 503 and problem["code"] == "engine_unavailable"
        status, _, _ = await http(port, "GET", "/healthz", key=None)
        assert status == 503


# ---------------------------------------------------------------------- bad requests


async def test_authentication() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        for key in (None, "wrong-key"):
            status, _, problem = await http(port, "GET", "/api/v1/account", key=key)
            assert status == 401 and problem["code"] == "unauthorized"
        status, _, problem = await http(port, "POST", "/api/v1/orders", order(), key=None)
        assert status == 401 and problem["code"] == "unauthorized"


async def test_paths_methods_and_bodies() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        status, _, problem = await http(port, "GET", "/api/v2/nothing", key=None)
        assert status == 404 and problem["code"] == "not_found"
        status, headers, problem = await http(port, "PUT", "/api/v1/orders")
        assert status == 405 and problem["code"] == "method_not_allowed"
        assert "POST" in headers["allow"]
        status, _, problem = await http(port, "POST", "/api/v1/account")
        assert status == 405 and problem["code"] == "method_not_allowed"
        bad_bodies = {
            b"{not json": "",
            b'{"symbol":"AAPL","side":"buy","qty":"1","price":180}': "`$.qty`",
            b'{"symbol":"AAPL","side":"buy","qty":1,"price":180,"colour":"red"}': "colour",
            b'{"type":"cancel_order","symbol":"AAPL","side":"buy","qty":1}': "`$.type`",
            b"[" * 100: "",
            b"": "body",
        }
        for raw, words in bad_bodies.items():
            status, _, problem = await http(port, "POST", "/api/v1/orders", raw=raw)
            assert status == 400 and problem["code"] == "invalid_message", raw
            assert words in problem["text"], problem
        status, _, problem = await http(port, "GET", "/api/v1/orders?colour=red")
        assert status == 400 and problem["code"] == "invalid_message"
        status, _, problem = await http(port, "POST", "/api/v1/orders", raw=b" " * 70_000)
        assert status == 413
        # the gateway is unharmed
        status, _, _ = await http(port, "POST", "/api/v1/orders", order())
        assert status == 200


async def test_slow_and_broken_clients_do_not_stall_others() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()  # ... and never sends the rest
        garbage_reader, garbage = await asyncio.open_connection("127.0.0.1", port)
        garbage.write(b"\x00\x01 nonsense\r\n\r\n")
        await garbage.drain()
        answer = await asyncio.wait_for(garbage_reader.read(), seconds(DEFAULT_TIMEOUT))
        assert answer.startswith(b"HTTP/1.1 400")
        huge_reader, huge = await asyncio.open_connection("127.0.0.1", port)
        huge.write(b"GET /api/v1/account HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
        await huge.drain()
        answer = await asyncio.wait_for(huge_reader.read(), seconds(DEFAULT_TIMEOUT))
        assert answer.startswith(b"HTTP/1.1 431")
        status, _, _ = await http(port, "GET", "/api/v1/account")
        assert status == 200
        writer.close()
        garbage.close()
        huge.close()


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with system() as (_, gateway):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.rest_port)
        request = b"GET /api/v1/account HTTP/1.1\r\nAuthorization: Bearer alice-key\r\n"
        request += b"Host: x\r\n\r\n"
        for _ in range(2):
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds(DEFAULT_TIMEOUT))
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            body = await asyncio.wait_for(reader.readexactly(length), seconds(DEFAULT_TIMEOUT))
            assert json.loads(body)["type"] == "account"
        writer.close()


async def test_openapi_health_and_metrics() -> None:
    async with system() as (_, gateway):
        port = gateway.rest_port
        status, headers, document = await http(port, "GET", "/api/v1/openapi.json", key=None)
        assert status == 200 and headers["content-type"] == "application/json"
        assert document["openapi"].startswith("3.1")
        assert {"/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/account"} <= set(
            document["paths"]
        )
        schemas = document["components"]["schemas"]
        assert {"NewOrder", "OrderResult", "CancelReject", "Account"} <= set(schemas)
        assert "type" not in schemas["NewOrder"].get("required", [])
        status, _, health = await http(port, "GET", "/healthz", key=None)
        assert status == 200 and health == {"status": "ok"}
        status, _, metrics = await http(port, "GET", "/metrics", key=None)
        assert status == 200 and "gateway_requests" in metrics
