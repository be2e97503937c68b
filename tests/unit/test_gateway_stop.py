"""The dispatcher's part of a gateway stop (issue 17), against a fake engine link: one
``cancel_all`` per account with a cancel-on-disconnect session (plus cancels still owed), not
sent again when the sessions close, owed when the link is down; cancel-only refusals."""

from __future__ import annotations

import json
from typing import Any

from exchange.protocol.codec import request_decoder
from exchange.protocol.messages import CancelAll, Limits
from gateway.dispatch import Dispatcher
from gateway.metrics import GatewayStats
from gateway.sessions import Session, SessionRegistry
from tests.unit.test_gateway_logic import FakeLink

LIMITS = Limits(orders_per_second=10.0, burst=10, max_open_orders=5)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, data: bytes) -> None:
        self.messages.append(json.loads(data))


def logged_in(dispatcher: Dispatcher, account: str, cancel_on_disconnect: bool) -> Session:
    session = Session(Inbox())
    dispatcher.log_in(session, account, LIMITS, cancel_on_disconnect)
    return session


def cancels(link: FakeLink) -> list[str]:
    assert all(type(envelope.command) is CancelAll for envelope, _ in link.sent)
    return [envelope.account for envelope, _ in link.sent]


def test_cancel_on_stop_sends_one_cancel_all_per_account_once() -> None:
    link = FakeLink(up=False)
    dispatcher = Dispatcher(link, SessionRegistry(), GatewayStats())
    gone = logged_in(dispatcher, "d", True)
    dispatcher.disconnect(gone)  # engine down: owed
    sessions = [
        logged_in(dispatcher, "a", True),
        logged_in(dispatcher, "a", True),
        logged_in(dispatcher, "a", False),
        logged_in(dispatcher, "b", False),
        logged_in(dispatcher, "c", True),
    ]
    link.up = True
    assert dispatcher.cancel_on_stop() == ["a", "c", "d"]
    assert cancels(link) == ["a", "c", "d"]
    assert dispatcher.cancels_owed == set()
    for session in sessions:  # closing them afterwards sends nothing more
        dispatcher.disconnect(session)
    assert cancels(link) == ["a", "c", "d"]


def test_cancel_on_stop_with_the_engine_down_owes_the_cancels() -> None:
    link = FakeLink(up=False)
    dispatcher = Dispatcher(link, SessionRegistry(), GatewayStats())
    session = logged_in(dispatcher, "a", True)
    assert dispatcher.cancel_on_stop() == ["a"]
    assert link.sent == [] and dispatcher.cancels_owed == {"a"}
    dispatcher.disconnect(session)
    assert dispatcher.cancels_owed == {"a"}


def test_refuse_stopping_answers_in_the_sessions_reply_order() -> None:
    link = FakeLink()
    dispatcher = Dispatcher(link, SessionRegistry(), GatewayStats(), wall_clock=lambda: 7)
    session = logged_in(dispatcher, "a", True)
    [query], _ = request_decoder.decode_frame('{"type":"get_orders","req_id":1}')
    dispatcher.handle(session, query)
    [new], _ = request_decoder.decode_frame(
        '{"type":"new_order","symbol":"AAPL","side":"buy","qty":1,"price":1,"req_id":2}'
    )
    [amend], _ = request_decoder.decode_frame('{"type":"amend_order","order_id":5,"qty":2}')
    dispatcher.refuse_stopping(session, new)
    dispatcher.refuse_stopping(session, amend)
    inbox: Any = session.deliver
    assert inbox.messages == []  # behind the query in flight
    (_, pending) = link.sent[0]
    pending.on_reply([])
    rejected, cancel_reject = inbox.messages
    assert rejected["type"] == "execution_report" and rejected["exec_type"] == "rejected"
    assert rejected["reject_reason"] == "engine_unavailable" and rejected["req_id"] == 2
    assert rejected["seq"] is None and rejected["ts"] == 7
    assert "shutting down" in rejected["text"]
    assert cancel_reject["type"] == "cancel_reject" and cancel_reject["order_id"] == 5
    assert cancel_reject["reject_reason"] == "engine_unavailable"
    assert dispatcher.stats.rejected["engine_unavailable"] == 2
    assert len(link.sent) == 1  # nothing refused went to the engine
