"""Hostile input for the fuzz tests: hypothesis strategies and a seeded frame generator.

Everything here is what a buggy or malicious client can put on the wire: deep nesting, numbers
no reply can carry (2^64, 1e308, subnormals, -0.0), wrong types, unknown fields and types,
empty and mixed batches, long strings, odd Unicode. ``refused_frames`` builds frames that the
venue must refuse as a whole (so a test can check that books and accounts did not move), each
with the req_ids it carries, for the socket-level run against the real processes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

REQUEST_TYPES = [
    "login",
    "register",
    "new_order",
    "cancel_order",
    "amend_order",
    "cancel_all",
    "get_account",
    "get_orders",
    "ping",
    "subscribe",
    "unsubscribe",
]
FIELDS = [
    "type",
    "req_id",
    "symbol",
    "side",
    "qty",
    "price",
    "order_type",
    "tif",
    "post_only",
    "client_order_id",
    "stp",
    "order_id",
    "channels",
    "depth",
    "token",
    "api_key",
    "account",
    "cash",
    "cancel_on_disconnect",
]
HUGE_INTS = [2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**63), -(2**64), -1, 0]
ODD_FLOATS = [1e308, -1e308, 5e-324, -0.0, 0.0, 1e-9, 2.0**53, 189.505, 1e16]
ODD_TEXT = ["", "\u0000", "\ud7ff\ue000", "😀" * 8, "a" * 2000, '"]}{[', "\\", "AAPL\n"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(HUGE_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(ODD_FLOATS)
    | st.text(max_size=20)
    | st.sampled_from(ODD_TEXT)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value (no NaN or infinity: JSON has none), shallow."""


def nested(depth: int, inner: str = "1") -> str:
    """``inner`` wrapped in ``depth`` alternating arrays and objects."""
    text = inner
    for level in range(depth):
        text = f"[{text}]" if level % 2 else '{"a":' + text + "}"
    return text


requests = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(REQUEST_TYPES) | st.text(max_size=8),
    st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=6),
)
"""Request-shaped objects whose every field may be of the wrong type or out of range."""


def _frame_of(members: list[Any], batch: bool) -> str:
    return json.dumps(members if batch else members[0])


frames = st.one_of(
    st.builds(_frame_of, st.lists(requests, min_size=1, max_size=5), st.booleans()),
    json_values.map(json.dumps),
    st.integers(min_value=30, max_value=3000).map(lambda d: nested(d)),
    st.builds(
        lambda d, kind: '{"type":"' + kind + '","req_id":1,"symbol":' + nested(d, '"x"') + "}",
        st.integers(min_value=30, max_value=2000),
        st.sampled_from(REQUEST_TYPES),
    ),
    st.text(max_size=200),
    st.just("[]"),
)
"""Whole text frames: requests, batches, any JSON, deep nesting, and non-JSON text."""


# ---------------------------------------------------------------------- socket-level frames


@dataclass
class HostileFrame:
    """A text (or binary) frame and what answering it means."""

    payload: str | bytes
    req_ids: list[int] = field(default_factory=list)
    """req_ids the replies must echo (one per member that carries a readable one)."""
    anonymous_errors: int = 0
    """Members with no readable req_id: each must still get an ``error``."""


def refused_frames(rng: random.Random, count: int, first_req_id: int) -> list[HostileFrame]:
    """``count`` frames that change nothing: invalid messages, orders with numbers out of
    range or on unknown symbols, cancels and amends of orders that do not exist, reads.

    req_ids are unique from ``first_req_id`` on, so replies can be matched to members.
    """
    next_id = first_req_id
    out: list[HostileFrame] = []

    def member() -> tuple[Any, int | None]:
        nonlocal next_id
        next_id += 1
        rid = next_id
        choice = rng.randrange(14)
        if choice == 0:
            qty = rng.choice([2**53, 2**64, 2**70, -(2**64), 0, -5])
            return _order(rid, qty=qty, price=100.0), rid
        if choice == 1:
            price = rng.choice([1e308, -1e308, 5e-324, -1.0, 0.0, 2.0**60, 100.001])
            return _order(rid, qty=1, price=price), rid
        if choice == 2:
            return _order(rid, symbol=rng.choice([*ODD_TEXT, "NOPE"]), qty=1, price=100.0), rid
        if choice == 3:
            return {
                "type": "cancel_order",
                "order_id": rng.randrange(10**12, 2**63),
                "req_id": rid,
            }, rid
        if choice == 4:
            qty = rng.choice([2**64, 0, 5])
            return {"type": "amend_order", "order_id": 2**62, "qty": qty, "req_id": rid}, rid
        if choice == 5:
            return {"type": "new_order", "symbol": "AAPL", "bogus": [1], "req_id": rid}, rid
        if choice == 6:
            return {
                "type": "new_order",
                "symbol": "AAPL",
                "side": "buy",
                "qty": "1",
                "req_id": rid,
            }, rid
        if choice == 7:
            return {"type": rng.choice(["nope", "subscribe", "Login", ""]), "req_id": rid}, rid
        if choice == 8:
            return {"type": "get_orders", "req_id": rid, "symbol": rng.choice(ODD_TEXT)}, rid
        if choice == 9:
            return {"type": "ping", "req_id": rid}, rid
        if choice == 10:
            return {"type": "cancel_order", "req_id": 2**64}, None  # req_id nobody could echo
        if choice == 11:
            return {"type": "login", "api_key": "x" * rng.randrange(1, 300), "req_id": rid}, rid
        if choice == 12:
            return [[["not", "a", "request"]]], None
        return rng.choice([None, 1, "text", 1.5, True]), None

    for _ in range(count):
        shape = rng.randrange(10)
        if shape == 0:
            out.append(HostileFrame(nested(rng.randrange(33, 3000)), anonymous_errors=1))
            continue
        if shape == 1:
            out.append(
                HostileFrame(rng.choice(["", "{", "nul", "[1,", '{"type":']), anonymous_errors=1)
            )
            continue
        if shape == 2:
            out.append(HostileFrame("[]", anonymous_errors=1))
            continue
        if shape == 3:
            out.append(HostileFrame(b'{"type":"ping"}', anonymous_errors=1))  # binary frame
            continue
        size = 1 if shape < 7 else rng.randrange(2, 12)
        members = [member() for _ in range(size)]
        frame = HostileFrame(json.dumps([m for m, _ in members] if size > 1 else members[0][0]))
        for _, rid in members:
            if rid is None:
                frame.anonymous_errors += 1
            else:
                frame.req_ids.append(rid)
        out.append(frame)
    return out


def _order(rid: int, **fields: Any) -> dict[str, Any]:
    return {"type": "new_order", "symbol": "AAPL", "side": "buy", **fields, "req_id": rid}
