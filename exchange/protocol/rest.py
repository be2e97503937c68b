"""The REST order-entry shapes (PROTOCOL §6) and their OpenAPI 3.1 description.

Requests and replies are the WebSocket messages (``messages``); REST adds only what HTTP needs:

- ``AmendBody``: the body of ``PATCH /api/v1/orders/{order_id}`` (the order id is in the path);
- ``OrderResult``: every execution report one request caused at once;
- ``CancelAllResult``: ``cancel_all_done`` with the reports of the orders it cancelled.

``openapi()`` builds the description from these msgspec types
(``msgspec.json.schema_components``): no schema is written by hand, only the paths that use
them. Imports only msgspec and the standard library.
"""

from __future__ import annotations

from typing import Any

import msgspec

from exchange.protocol.messages import (
    Account,
    CancelReject,
    Error,
    ExecutionReport,
    NewOrder,
    Orders,
    OrderState,
    RequestId,
)

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
"""A larger request body is answered 413."""


class AmendBody(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="amend_order"
):
    """``PATCH /api/v1/orders/{order_id}``: the new total ``qty``, ``price`` and/or
    ``trigger_price`` (a conditional order before it fires)."""

    qty: int | None = None
    price: float | None = None
    req_id: RequestId = None
    trigger_price: float | None = None


class OrderResult(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="order_result"):
    """Every execution report the request caused at once, in order (``new``, ``trade``s, a
    terminal report; or the one ``rejected`` / ``canceled`` / ``replaced``)."""

    reports: list[ExecutionReport]


class CancelAllResult(
    msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="cancel_all_done", kw_only=True
):
    """``DELETE /api/v1/orders`` (cancel-all): ``cancel_all_done`` plus a ``canceled``
    report per order it cancelled."""

    canceled: int
    account: str
    reports: list[ExecutionReport]
    symbol: str | None = None
    req_id: RequestId = None
    ts: int | None = None
    seq: int | None = None


_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str, *, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": _ref(schema)}},
    }
    if retry_after:
        answer["headers"] = {
            "Retry-After": {
                "description": "seconds until the account's next token",
                "schema": {"type": "integer"},
            }
        }
    return answer


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of PROTOCOL §6 (a JSON-ready dict). Never raises."""
    types = [
        NewOrder,
        AmendBody,
        OrderResult,
        CancelAllResult,
        CancelReject,
        Orders,
        OrderState,
        Account,
        Error,
    ]
    (_, components) = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    for body in ("NewOrder", "AmendBody"):  # a body may leave out "type"
        schema = components[body]
        schema["required"] = [f for f in schema.get("required", []) if f != "type"]
    errors = {
        "401": _answer("missing or unknown API key (`unauthorized`)", "Error"),
        "429": _answer("rate limited (`rate_limited`)", "Error", retry_after=True),
        "503": _answer("engine unavailable (`engine_unavailable`)", "Error"),
    }
    order_id = {
        "name": "order_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }

    def query(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": {"type": "string"},
        }

    def request_body(schema: str) -> dict[str, Any]:
        return {"required": True, "content": {_JSON: {"schema": _ref(schema)}}}

    rejected = {
        "400": _answer("bad body (`error` `invalid_message`) or `rejected` report", "OrderResult"),
        "429": _answer(
            "rate limited: `order_result` with the `rejected` report",
            "OrderResult",
            retry_after=True,
        ),
        "503": _answer(
            "engine unavailable: `order_result` with the `rejected` report", "OrderResult"
        ),
    }
    cancel_rejects = {
        "400": _answer("`cancel_reject` (bad new values) or `invalid_message`", "CancelReject"),
        "404": _answer("`cancel_reject` `unknown_order`", "CancelReject"),
        "409": _answer("`cancel_reject` `too_late`", "CancelReject"),
    }
    paths: dict[str, Any] = {
        f"{API_PREFIX}/orders": {
            "post": {
                "summary": "Place an order (a new_order; type optional)",
                "requestBody": request_body("NewOrder"),
                "responses": {
                    "200": _answer("every execution report the order caused", "OrderResult"),
                    **errors,
                    **rejected,
                },
            },
            "get": {
                "summary": "The account's live orders",
                "parameters": [query("symbol", "only this symbol")],
                "responses": {"200": _answer("live orders", "Orders"), **errors},
            },
            "delete": {
                "summary": "Cancel one order by client_order_id, else cancel all (of symbol)",
                "parameters": [
                    query("client_order_id", "cancel this one order"),
                    query("symbol", "cancel-all of this symbol only"),
                ],
                "responses": {
                    "200": _answer(
                        "`order_result` (one order) or `cancel_all_done` with `reports`",
                        "CancelAllResult",
                    ),
                    **errors,
                    **cancel_rejects,
                },
            },
        },
        f"{API_PREFIX}/orders/{{order_id}}": {
            "parameters": [order_id],
            "get": {
                "summary": "One order, live or remembered done",
                "responses": {
                    "200": _answer("the order", "OrderState"),
                    "404": _answer("`error` `unknown_order`", "Error"),
                    **errors,
                },
            },
            "delete": {
                "summary": "Cancel an order",
                "responses": {
                    "200": _answer("the `canceled` report", "OrderResult"),
                    **errors,
                    **cancel_rejects,
                },
            },
            "patch": {
                "summary": "Amend an order (qty, price and/or trigger_price)",
                "requestBody": request_body("AmendBody"),
                "responses": {
                    "200": _answer("the `replaced` (and any `trade`) reports", "OrderResult"),
                    **errors,
                    **cancel_rejects,
                },
            },
        },
        f"{API_PREFIX}/account": {
            "get": {
                "summary": "The account: cash, equity, margins, positions",
                "responses": {"200": _answer("the account", "Account"), **errors},
            }
        },
        f"{API_PREFIX}/openapi.json": {
            "get": {
                "summary": "This document (no authentication)",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Exchange simulator REST order entry", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
