"""Wire shapes and the rules every process shares, each written once in ``exchange.protocol``.

- the command port's frames: what the engine builds by hand is exactly the ``EngineReply`` /
  ``EnginePush`` the gateway decodes;
- who receives a private event (``internal.fans_out``): the engine's pushes and the gateway's
  routing follow the same rule;
- account names: registration (command port) and the core refuse exactly the same names;
- the token bucket the gateway enforces and the bots obey;
- the ``ref`` of an error, from a decoded request or from raw JSON;
- a text frame decodes the same as ``str`` (websockets) and as ``bytes`` (``decode=False``);
- no process module builds its own JSON encoder or decoder.
"""

from __future__ import annotations

import ast
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from exchange.core import Exchange
from exchange.engine import core_config
from exchange.engine.command_port import CommandPort
from exchange.engine.history import EventHistory
from exchange.engine.metrics import EngineStats
from exchange.engine.publisher import GatewayPeer, Publisher
from exchange.engine.sequencer import Sequencer
from exchange.protocol.codec import (
    encode,
    encode_push,
    encode_reply,
    engine_frame_decoder,
    error_ids,
    http_error_body,
    request_decoder,
)
from exchange.protocol.config import load_config
from exchange.protocol.internal import EnginePush, EngineReply, fans_out
from exchange.protocol.messages import (
    AccountUpdate,
    CancelAllDone,
    CancelOrder,
    CancelReject,
    CreateAccount,
    ExecutionReport,
    Limits,
    NewOrder,
    RejectReason,
)
from exchange.protocol.names import ACCOUNT_NAME_MAX, valid_account_name
from exchange.protocol.ratelimit import TokenBucket
from exchange.protocol.replies import ref_of
from exchange.service.outbox import Outbox
from gateway.routing import Router
from gateway.sessions import FloodGuard, Session, SessionRegistry
from tests.support import REPO_ROOT

# ---------------------------------------------------------------------- command-port frames


@pytest.mark.parametrize("messages", [[], [b'{"type":"pong"}'], [b"{}", b"[1,2]", b'"x"']])
def test_hand_built_reply_frames_are_the_engine_reply_struct(messages: list[bytes]) -> None:
    frame = encode_reply(42, messages)
    assert frame == encode(EngineReply(id=42, messages=[msgspec.Raw(m) for m in messages]))
    decoded = engine_frame_decoder.decode(frame)
    assert isinstance(decoded, EngineReply) and decoded.id == 42
    assert [bytes(m) for m in decoded.messages] == messages


@pytest.mark.parametrize("events", [[], [b'{"type":"account_update"}', b"{}"]])
def test_hand_built_push_frames_are_the_engine_push_struct(events: list[bytes]) -> None:
    frame = encode_push(events)
    assert frame == encode(EnginePush(events=[msgspec.Raw(e) for e in events]))
    decoded = engine_frame_decoder.decode(frame)
    assert isinstance(decoded, EnginePush) and [bytes(e) for e in decoded.events] == events


def test_http_error_bodies_have_the_documented_shape() -> None:
    body = http_error_body("not_found", "no such path")
    assert body == b'{"type":"error","code":"not_found","text":"no such path","ref":null}'


# ---------------------------------------------------------------------- fan-out


def _publisher_pushes(event: Any) -> bool:
    """Whether the engine's publisher pushes ``event`` to a gateway that did not cause it."""
    history = EventHistory(10)
    publisher = Publisher(
        Sequencer(Exchange(core_config(load_config(None)))),
        history,
        EngineStats(),
        build_snapshot=lambda: b"",
        schedule=lambda callback: None,
    )
    other = GatewayPeer("other", Outbox(_noop_send, limit=1 << 20, always_array=True))
    publisher.add_gateway(other)
    publisher.publish([event], origin=None)
    return bool(other.take())


async def _noop_send(frame: bytes) -> None:
    return None


def _report(account: str) -> ExecutionReport:
    return ExecutionReport(
        exec_type="new",
        status="new",
        order_id=1,
        client_order_id=None,
        account=account,
        symbol="AAPL",
        side="buy",
        order_type="limit",
        tif="gtc",
        price=1.0,
        qty=1,
        cum_qty=0,
        leaves_qty=1,
        avg_px=0.0,
        ts=1,
        seq=1,
    )


def _private_events(account: str) -> list[Any]:
    reject: RejectReason = "unknown_order"
    return [
        _report(account),
        CancelReject(
            request="cancel",
            order_id=1,
            client_order_id=None,
            reject_reason=reject,
            text="",
            status=None,
            account=account,
            ts=1,
            seq=2,
        ),
        CancelAllDone(canceled=0, account=account, ts=1, seq=3),
        AccountUpdate(account, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, [], ts=1, seq=4),
    ]


def test_engine_and_gateway_fan_out_the_same_private_events() -> None:
    registry = SessionRegistry()
    inbox: list[bytes] = []
    session = Session(inbox.append, FloodGuard(100, 10.0))
    session.log_in("a", Limits(orders_per_second=1.0, burst=1, max_open_orders=1), False)
    registry.add(session)
    router = Router(registry)
    for event in _private_events("a"):
        tag = str(type(event).__struct_config__.tag)
        inbox.clear()
        router.push([msgspec.Raw(encode(event))])
        assert fans_out(tag) == _publisher_pushes(event) == bool(inbox), tag
    assert fans_out("execution_report") and fans_out("account_update")
    assert not fans_out("cancel_reject") and not fans_out("error") and not fans_out("orders")


# ---------------------------------------------------------------------- account names


NAMES = [
    "a",
    "alicia",
    "bot_7.x-y",
    "9lives",
    "x" * ACCOUNT_NAME_MAX,
    "x" * (ACCOUNT_NAME_MAX + 1),
    "x" * 64,
    "",
    "_hidden",
    ".dot",
    "-dash",
    "two words",
    "new\nline",
    "semi;colon",
    "café",
]


def test_the_name_rule_is_the_documented_one() -> None:
    accepted = [name for name in NAMES if valid_account_name(name)]
    assert accepted == ["a", "alicia", "bot_7.x-y", "9lives", "x" * 32]


@pytest.mark.parametrize("name", NAMES)
def test_registration_and_the_core_accept_the_same_names(name: str) -> None:
    config = load_config(None)
    core = Exchange(core_config(config))
    opened = core.submit("", CreateAccount(account=name, cash=10.0), 1)
    core_accepts = core.account(name) is not None
    assert core_accepts == valid_account_name(name), opened

    sequencer = Sequencer(Exchange(core_config(config)))
    publisher = Publisher(
        sequencer,
        EventHistory(10),
        EngineStats(),
        build_snapshot=lambda: b"",
        schedule=lambda callback: None,
    )
    port = CommandPort(sequencer, publisher, config, EngineStats(), buffer_limit=1 << 20)
    peer = GatewayPeer("g", Outbox(_noop_send, limit=1 << 20, always_array=True))
    publisher.add_gateway(peer)
    envelope = {"type": "register_account", "id": 1, "account": name, "cash": 10.0}
    port.handle_frame(peer, json.dumps(envelope).encode())
    (frame,) = peer.take()
    reply = engine_frame_decoder.decode(frame)
    assert isinstance(reply, EngineReply)
    first = json.loads(bytes(reply.messages[0]))
    assert (first["type"] == "registered") == valid_account_name(name), first


def test_the_configured_accounts_follow_the_name_rule() -> None:
    config = tomllib.loads((REPO_ROOT / "exchange" / "default.toml").read_text())
    names = [account["name"] for account in config["accounts"]]
    names.append(config.get("insurance_account", "insurance_fund"))
    assert [name for name in names if not valid_account_name(name)] == []


# ---------------------------------------------------------------------- token bucket


def test_one_bucket_serves_the_gateway_and_the_bots() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.try_take(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(0.5)
    assert bucket.take(0.0) == pytest.approx(0.5)  # nothing taken
    assert not bucket.try_take(0.25) and bucket.take(0.5) == 0.0
    bucket.pause(1.0, 1.0)
    assert bucket.take(1.5) == pytest.approx(0.5 + 0.5)  # pause left, then one refill
    assert bucket.try_take(2.5)


def test_a_bucket_without_rate_never_refills_and_burst_is_at_least_one() -> None:
    bucket = TokenBucket(rate=0.0, burst=0, now=0.0)
    assert bucket.burst == 1
    assert bucket.take(0.0) == 0.0
    assert math.isinf(bucket.take(1e9)) and math.isinf(bucket.wait_time(1e9))


# ---------------------------------------------------------------------- refs and frames


@pytest.mark.parametrize(
    ("request_", "ref"),
    [
        (NewOrder(symbol="X", side="buy", qty=1, client_order_id="c", req_id=5), "c"),
        (NewOrder(symbol="X", side="buy", qty=1, req_id=5), 5),
        (CancelOrder(order_id=1), None),
    ],
)
def test_error_refs_agree_for_decoded_and_raw_requests(request_: Any, ref: Any) -> None:
    assert ref_of(request_) == ref
    assert error_ids(encode(request_)) == (ref, request_.req_id)


FRAMES = [
    '{"type":"ping","req_id":1}',
    '  \n[{"type":"ping"},{"type":"new_order","symbol":"X","side":"buy","qty":"1"},3]',
    '{"type":"ping","req_id":"caf\u00e9"}',
    "[]",
    "[" * 40 + "]" * 40,
    '[{"type":"ping"},' + "[" * 40 + "]" * 40 + "]",
    '{"type":"ping","req_id":"\ud800"}',
    "\u00a0[]",
    "not json",
]


@pytest.mark.parametrize("frame", FRAMES)
def test_text_frames_decode_alike_as_str_and_as_bytes(frame: str) -> None:
    from_str = request_decoder.decode_frame(frame)
    from_bytes = request_decoder.decode_frame(frame.encode("utf-8", "surrogatepass"))
    assert from_str == from_bytes


# ---------------------------------------------------------------------- one codec


PROCESS_CODE = ["gateway", "marketdata", "exporter", "bots", "monitor", "exchange"]


def _json_codecs_built(path: Path) -> list[str]:
    """Calls in ``path`` that build a JSON encoder/decoder or a frame decoder."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("msgspec.json.Encoder", "msgspec.json.Decoder", "FrameDecoder"):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {name}")
    return found


def test_wire_encoders_and_decoders_are_built_only_in_the_codec() -> None:
    built = []
    for package in PROCESS_CODE:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "exchange/protocol" not in path.as_posix():
                built += _json_codecs_built(path)
    assert built == []
