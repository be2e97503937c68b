"""The gateway's pure parts in memory: token buckets, flood guard, reply order, session
registry, replies made by the gateway, routing of engine messages, and the dispatcher against
a fake engine link."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from exchange.protocol.codec import engine_frame_decoder, request_decoder
from exchange.protocol.messages import (
    AccountUpdate,
    AmendOrder,
    CancelAll,
    CancelOrder,
    CancelReject,
    ExecutionReport,
    GetOrders,
    Limits,
    NewOrder,
)
from exchange.protocol.ratelimit import TokenBucket
from exchange.protocol.replies import ref_of, rejection
from gateway.dispatch import Dispatcher, Pending
from gateway.metrics import GatewayStats
from gateway.ratelimit import RateLimiter
from gateway.routing import Router
from gateway.sessions import FloodGuard, ReplyQueue, Session, SessionRegistry

LIMITS = Limits(orders_per_second=10.0, burst=2, max_open_orders=5)


def report(account: str, req_id: Any = None, exec_type: str = "new") -> ExecutionReport:
    return ExecutionReport(
        exec_type,  # type: ignore[arg-type]
        "new",
        1,
        None,
        account,
        "AAPL",
        "buy",
        "limit",
        "gtc",
        100.0,
        1,
        0,
        1,
        0.0,
        req_id=req_id,
        ts=1,
        seq=1,
    )


def raws(*messages: Any) -> list[msgspec.Raw]:
    return [msgspec.Raw(msgspec.json.encode(m)) for m in messages]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, data: bytes) -> None:
        self.messages.append(json.loads(data))


def session(account: str | None = None, registry: SessionRegistry | None = None) -> Session:
    created = Session(Inbox())
    if account is not None:
        created.log_in(account, LIMITS, False)
        if registry is not None:
            registry.add(created)
    return created


def inbox(of: Session) -> list[dict[str, Any]]:
    deliver: Any = of.deliver
    messages: list[dict[str, Any]] = deliver.messages
    return messages


# ---------------------------------------------------------------------- rate limits


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0  # never more than burst stored
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) > 0


def test_rate_limiter_is_per_account_and_gives_retry_after_ms() -> None:
    limiter = RateLimiter()
    assert limiter.take("a", 1.0, 1, 0.0) == 0
    assert limiter.take("a", 1.0, 1, 0.1) in (900, 901)  # ceil of 0.9 s in float
    assert limiter.take("b", 1.0, 1, 0.1) == 0
    assert limiter.take("a", 1.0, 1, 1.0) == 0
    assert limiter.take("a", 1000.0, 1, 1.0) == 0  # new limits: a fresh, full bucket
    assert limiter.take("a", 1000.0, 1, 1.0) == 1


def test_flood_guard_counts_within_the_window() -> None:
    guard = FloodGuard(limit=3, window=10.0)
    assert not any(guard.hit(t) for t in (0.0, 1.0, 2.0))
    assert guard.hit(3.0)
    fresh = FloodGuard(limit=3, window=10.0)
    assert not any(fresh.hit(t) for t in (0.0, 5.0, 10.0, 15.0, 20.0))


# ---------------------------------------------------------------------- sessions


def test_reply_queue_keeps_request_order() -> None:
    out: list[bytes] = []
    queue = ReplyQueue(out.append)
    queue.ready([b"a"])
    first = queue.reserve()
    queue.ready([b"b"])
    second = queue.reserve()
    assert out == [b"a"]
    queue.fill(second, [b"d"])
    assert out == [b"a"]
    queue.fill(first, [b"c1", b"c2"])
    assert out == [b"a", b"c1", b"c2", b"b", b"d"]
    assert len(queue) == 0


def test_registry_by_account() -> None:
    registry = SessionRegistry()
    one, two, three = session("a", registry), session("a", registry), session("b", registry)
    assert registry.of("a") == [one, two] and len(registry) == 3
    assert registry.remove(one) and not registry.remove(one)
    assert registry.of("a") == [two]
    registry.remove(two)
    assert registry.of("a") == [] and registry.accounts() == ["b"]
    assert not registry.remove(session())
    assert three in registry.of("b")


# ---------------------------------------------------------------------- replies


def test_rejection_shapes() -> None:
    new = NewOrder(symbol="AAPL", side="buy", qty=2, price=1.5, client_order_id="c", req_id=9)
    data = json.loads(rejection(new, "a", "rate_limited", "slow down", 5, 250))
    assert data["type"] == "execution_report" and data["exec_type"] == "rejected"
    assert data["reject_reason"] == "rate_limited" and data["retry_after_ms"] == 250
    assert data["seq"] is None and data["ts"] == 5 and data["req_id"] == 9
    assert data["client_order_id"] == "c" and data["order_id"] is None

    cancel = json.loads(
        rejection(CancelOrder(order_id=4, req_id=1), "a", "rate_limited", "t", 5, 7)
    )
    assert cancel["type"] == "cancel_reject" and cancel["request"] == "cancel"
    assert cancel["retry_after_ms"] == 7 and cancel["order_id"] == 4 and cancel["status"] is None
    amend = json.loads(
        rejection(AmendOrder(client_order_id="x"), "a", "engine_unavailable", "t", 5)
    )
    assert amend["request"] == "amend" and amend["retry_after_ms"] is None
    msgspec.json.decode(json.dumps(amend), type=CancelReject)

    other = json.loads(rejection(CancelAll(req_id="r"), "a", "engine_unavailable", "t", 5))
    assert other == {
        "type": "error",
        "code": "engine_unavailable",
        "text": "t",
        "ref": "r",
        "retry_after_ms": None,
        "req_id": "r",
    }
    limited = json.loads(rejection(GetOrders(req_id=3), "a", "rate_limited", "t", 5, 10))
    assert limited["code"] == "rate_limited" and limited["retry_after_ms"] == 10


def test_ref_prefers_client_order_id() -> None:
    assert ref_of(NewOrder(symbol="S", side="buy", qty=1, client_order_id="c", req_id=1)) == "c"
    assert ref_of(CancelOrder(order_id=1, req_id=1)) == 1
    assert ref_of(CancelAll()) is None


# ---------------------------------------------------------------------- routing


def test_router_reply_fans_out_and_strips_foreign_req_ids() -> None:
    registry = SessionRegistry()
    requester, twin, other = session("a", registry), session("a", registry), session("b", registry)
    router = Router(registry)
    update = AccountUpdate("b", 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, [], ts=1, seq=3)
    direct = router.reply(
        requester,
        raws(report("a", req_id=7), report("b", exec_type="trade"), update, {"type": "orders"}),
    )
    assert [json.loads(d)["type"] for d in direct] == ["execution_report", "orders"]
    assert json.loads(direct[0])["req_id"] == 7
    assert [m["req_id"] for m in inbox(twin)] == [None]
    assert [m["type"] for m in inbox(other)] == ["execution_report", "account_update"]
    assert inbox(requester) == []


def test_router_push_ignores_unroutable_messages() -> None:
    registry = SessionRegistry()
    target = session("a", registry)
    Router(registry).push(
        raws(
            report("a", req_id="x"),
            report("zzz"),
            {"type": "cancel_all_done", "account": "a", "canceled": 0},
        )
    )
    assert [(m["type"], m["req_id"]) for m in inbox(target)] == [("execution_report", None)]


def test_engine_frames_decode_as_array_or_object() -> None:
    frame = b'[{"type":"reply","id":1,"messages":[{"type":"pong"}]},{"type":"push","events":[]}]'
    reply, push = engine_frame_decoder.decode(frame)
    assert reply.id == 1 and bytes(reply.messages[0]) == b'{"type":"pong"}'
    assert push.events == []
    assert engine_frame_decoder.decode(b'{"type":"push","events":[]}').events == []


# ---------------------------------------------------------------------- dispatcher


class FakeLink:
    """Records requests; answers them when told."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.sent: list[tuple[Any, Pending]] = []

    def request(self, pending: Pending) -> None:
        if not self.up:
            pending.on_unavailable()
            return
        self.sent.append((pending.envelope(len(self.sent) + 1), pending))


def decode(frame: str) -> Any:
    [message], _ = request_decoder.decode_frame(frame)
    return message


def test_dispatcher_orders_replies_and_answers_when_the_link_drops() -> None:
    link = FakeLink()
    registry = SessionRegistry()
    dispatcher = Dispatcher(link, registry, GatewayStats(), wall_clock=lambda: 42)
    client = session("a", registry)
    dispatcher.handle(client, decode('{"type":"new_order","symbol":"AAPL","side":"buy","qty":1}'))
    dispatcher.handle(client, decode('{"type":"ping","req_id":1}'))
    dispatcher.handle(client, decode('{"type":"get_orders","req_id":2}'))
    assert [type(envelope).__name__ for envelope, _ in link.sent] == ["Submit", "Query"]
    assert inbox(client) == []  # the pong waits behind the order's reply
    link.sent[0][1].on_reply(raws(report("a")))
    assert [m["type"] for m in inbox(client)] == ["execution_report", "pong"]
    link.sent[1][1].on_unavailable()
    assert inbox(client)[-1]["code"] == "engine_unavailable" and inbox(client)[-1]["ref"] == 2


def test_dispatcher_rate_limits_and_needs_login() -> None:
    link = FakeLink()
    registry = SessionRegistry()
    times = iter([0.0, 0.0, 0.0])
    dispatcher = Dispatcher(link, registry, GatewayStats(), monotonic=lambda: next(times))
    anonymous = session()
    dispatcher.handle(anonymous, decode('{"type":"cancel_all","req_id":5}'))
    assert inbox(anonymous) == [
        {
            "type": "error",
            "code": "not_logged_in",
            "text": inbox(anonymous)[0]["text"],
            "ref": 5,
            "retry_after_ms": None,
            "req_id": 5,
        }
    ]
    client = session("a", registry)
    for _ in range(3):
        dispatcher.handle(client, decode('{"type":"cancel_all"}'))
    assert len(link.sent) == 2  # burst 2
    assert inbox(client) == []  # the reject waits behind the two requests in flight
    for _, pending in link.sent:
        pending.on_reply(raws({"type": "cancel_all_done", "account": "a", "canceled": 0}))
    assert [m["type"] for m in inbox(client)] == ["cancel_all_done", "cancel_all_done", "error"]
    assert inbox(client)[-1]["code"] == "rate_limited"
    assert inbox(client)[-1]["retry_after_ms"] == 100


def test_cancel_on_disconnect_is_retried_after_the_link_returns() -> None:
    link = FakeLink(up=False)
    registry = SessionRegistry()
    dispatcher = Dispatcher(link, registry, GatewayStats())
    client = Session(Inbox())
    dispatcher.log_in(client, "a", LIMITS, cancel_on_disconnect=True)
    dispatcher.disconnect(client)
    assert registry.of("a") == [] and dispatcher.cancels_owed == {"a"}
    link.up = True
    dispatcher.on_link_up()
    [(envelope, _)] = link.sent
    assert envelope.account == "a" and type(envelope.command) is CancelAll
    assert dispatcher.cancels_owed == set()
