"""Conditional orders through a real gateway and engine (PROTOCOL §3.1, §6): bad field
combinations are ``rejected`` ``invalid_order``, an out-of-range ``trigger_price`` never reaches
the engine, and REST ``PATCH`` amends a ``trigger_price``."""

from __future__ import annotations

from typing import Any

from tests.integration.clients import gateway_client
from tests.integration.test_gateway import order
from tests.integration.test_gateway import system as ws_system
from tests.integration.test_rest import exec_types, http
from tests.integration.test_rest import order as rest_order
from tests.integration.test_rest import system as rest_system


async def test_bad_combinations_are_rejected_invalid_order_over_the_gateway() -> None:
    bad: list[dict[str, Any]] = [
        order(trigger_price=170.0),  # trigger_price on a plain limit order
        order(price=None, order_type="stop"),  # no trigger_price
        order(order_type="stop", trigger_price=200.0),  # price on a stop (market) order
        order(price=None, order_type="stop_limit", trigger_price=200.0),  # no price
        order(activate_at=1),  # activate_at in the past
    ]
    async with ws_system() as (_, gateway), gateway_client(gateway.port, "alice-key") as client:
        for number, message in enumerate(bad):
            await client.send({**message, "req_id": number})
            reply = await client.next()
            assert (reply["exec_type"], reply["reject_reason"]) == ("rejected", "invalid_order")
            assert reply["req_id"] == number and reply["text"]
        await client.send(order(price=None, order_type="stop", trigger_price=1e308, req_id="x"))
        reply = await client.next()
        assert (reply["reject_reason"], reply["seq"]) == ("invalid_price", None)  # gateway's
        await client.send(order(price=None, order_type="stop", trigger_price=200.0, req_id="s"))
        reply = await client.next()
        assert (reply["exec_type"], reply["trigger_price"], reply["triggered"]) == (
            "new",
            200.0,
            False,
        )
        await client.send({"type": "get_orders", "req_id": "o"})
        listed = await client.next()
        assert [(o["order_type"], o["trigger_price"]) for o in listed["orders"]] == [
            ("stop", 200.0)
        ]


async def test_rest_patch_amends_the_trigger_price() -> None:
    async with rest_system() as (_, gateway):
        port = gateway.rest_port
        body = rest_order(side="sell", qty=2, price=None, order_type="stop", trigger_price=180.0)
        status, _, placed = await http(port, "POST", "/api/v1/orders", body)
        assert status == 200 and exec_types(placed) == ["new"]
        order_id = placed["reports"][0]["order_id"]
        path = f"/api/v1/orders/{order_id}"
        status, _, result = await http(port, "PATCH", path, {"trigger_price": 175.5, "qty": 3})
        assert status == 200 and exec_types(result) == ["replaced"]
        assert (result["reports"][0]["trigger_price"], result["reports"][0]["qty"]) == (175.5, 3)
        status, _, reject = await http(port, "PATCH", path, {"price": 170.0})
        assert status == 400 and reject["reject_reason"] == "invalid_order"
        status, _, shown = await http(port, "GET", path)
        assert status == 200 and shown["trigger_price"] == 175.5 and shown["triggered"] is False
