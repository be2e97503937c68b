"""Hostile input, property-tested in memory: the decoders of the gateway and the relay, the
gateway's dispatcher, the engine's command port boundary and the core's command handling.

The rules (PROTOCOL.md §2): no input raises; every message gets an answer that can be encoded;
what a process forwards or journals can be encoded; nothing refused changes books or accounts.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core.state import capture
from exchange.protocol.bounds import order_problem
from exchange.protocol.codec import (
    MAX_DEPTH,
    marketdata_request_decoder,
    request_decoder,
    too_deep,
)
from exchange.protocol.internal import Submit
from exchange.protocol.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CancelReject,
    Error,
    ExecutionReport,
    Limits,
    NewOrder,
)
from gateway.dispatch import Dispatcher, Pending
from gateway.metrics import GatewayStats
from gateway.sessions import Session, SessionRegistry
from tests.hostile import HUGE_INTS, ODD_FLOATS, ODD_TEXT, frames, nested, requests
from tests.unit.core_helpers import SYMBOL, make_exchange

HOSTILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_encode = msgspec.json.encode


@pytest.mark.parametrize("decoder", [request_decoder, marketdata_request_decoder])
@given(frame=frames | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
@HOSTILE
def test_decoding_never_raises_and_every_error_encodes(decoder: Any, frame: str) -> None:
    messages, _ = decoder.decode_frame(frame)
    assert messages
    for message in messages:
        if type(message) is Error:
            assert message.code == "invalid_message"
            _encode(message)  # an error can always be sent back


@given(depth=st.integers(min_value=1, max_value=4000), batch=st.booleans())
@HOSTILE
def test_nesting_beyond_the_limit_is_an_invalid_message(depth: int, batch: bool) -> None:
    frame = nested(depth)
    if batch:
        frame = f"[{frame}]"
    total = depth + batch
    [message], _ = request_decoder.decode_frame(frame)
    assert type(message) is Error
    assert ("nested deeper" in message.text) == (total > MAX_DEPTH)
    assert too_deep(frame.encode()) == (total > MAX_DEPTH)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"type":"ping","req_id":"' + "[{" * 500 + '\\"' + "]}" * 10 + '"}'
    [message], _ = request_decoder.decode_frame(text)
    assert type(message) is not Error and message.req_id.startswith("[{")


@given(member=requests)
@HOSTILE
def test_an_invalid_request_echoes_what_it_can(member: dict[str, Any]) -> None:
    [message], _ = request_decoder.decode_frame(json.dumps(member))
    if type(message) is not Error:
        return
    req_id = member.get("req_id")
    readable = isinstance(req_id, str) or (type(req_id) is int and -(2**63) < req_id < 2**63)
    assert message.req_id == (req_id if readable else None)


# ---------------------------------------------------------------------- the gateway


class _RecordingLink:
    """An engine link that is up and encodes every envelope as the real link would."""

    up = True

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def request(self, pending: Pending) -> None:
        self.sent.append(_encode(pending.envelope(len(self.sent) + 1)))
        pending.on_unavailable()  # answered at once, as when the link drops


@given(batch=st.lists(requests, min_size=1, max_size=6))
@HOSTILE
def test_the_dispatcher_answers_everything_and_forwards_only_what_encodes(
    batch: list[dict[str, Any]],
) -> None:
    link = _RecordingLink()
    dispatcher = Dispatcher(link, SessionRegistry(), GatewayStats(), wall_clock=lambda: 1)
    replies: list[bytes] = []
    session = Session(replies.append)
    session.log_in("alice", Limits(orders_per_second=1e9, burst=10**9, max_open_orders=5), False)
    messages, _ = request_decoder.decode_frame(json.dumps(batch))
    for message in messages:
        assert dispatcher.handle(session, message) is None  # logged in: nothing to wait for
    assert len(replies) == len(messages)  # one answer each, in order
    for reply in replies:
        json.loads(reply)
    for envelope in link.sent:  # what reached the "engine" decodes as the engine would
        msgspec.json.decode(envelope)


# ---------------------------------------------------------------------- the core

quantities = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(HUGE_INTS)
prices = (
    st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([*ODD_FLOATS, float("inf"), float("nan")])
)
texts = st.text(max_size=12) | st.sampled_from([*ODD_TEXT, SYMBOL])
order_ids = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
commands = st.one_of(
    st.builds(
        NewOrder,
        symbol=texts,
        side=st.sampled_from(["buy", "sell"]),
        qty=quantities,
        price=prices,
        order_type=st.sampled_from(["limit", "market"]),
        tif=st.sampled_from(["gtc", "ioc", "fok"]),
        post_only=st.booleans(),
        client_order_id=st.none() | texts,
        req_id=st.none() | st.integers(-(2**62), 2**62) | texts,
    ),
    st.builds(
        AmendOrder,
        order_id=order_ids,
        client_order_id=st.none() | texts,
        qty=st.none() | quantities,
        price=prices,
    ),
    st.builds(CancelOrder, order_id=order_ids, client_order_id=st.none() | texts),
    st.builds(CancelAll, symbol=st.none() | texts),
)


def _refused(events: list[Any]) -> bool:
    """Whether the command behind ``events`` was refused as a whole."""
    for event in events:
        if type(event) is ExecutionReport and event.exec_type != "rejected":
            return False
    return all(type(e) in (ExecutionReport, CancelReject, Error) for e in events)


@given(batch=st.lists(commands, min_size=1, max_size=8))
@HOSTILE
def test_the_core_survives_any_command_and_refusals_change_nothing(batch: list[Any]) -> None:
    exchange = make_exchange()
    exchange.submit("a", NewOrder(symbol=SYMBOL, side="sell", qty=5, price=101.0), 1)
    exchange.submit("b", NewOrder(symbol=SYMBOL, side="buy", qty=5, price=99.0), 2)
    for ts, command in enumerate(batch, start=3):
        kind = type(command)
        if kind in (NewOrder, AmendOrder) and order_problem(command.qty, command.price):
            # The engine's boundary refuses these before the journal; the core must still
            # survive them (defence in depth) and never echo what cannot be encoded.
            pass
        else:
            _encode(Submit(id=1, account="a", command=command))  # the journal can hold it
        before = capture(exchange)
        events = exchange.submit("a", command, ts)
        for event in events:
            _encode(event)
        if _refused(events):
            after = capture(exchange)
            assert (after.accounts, after.books) == (before.accounts, before.books)
