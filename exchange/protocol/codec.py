"""The one codec: JSON encoders and decoders, built once, for every direction of the contract.

Frames are JSON text: one message, or a JSON array of messages (a batch). ``decode_frame``
splits a batch and decodes every member on its own, so one bad member never spoils the
others; each bad member becomes an ``Error`` with code ``invalid_message`` and msgspec's own
validation text (``Expected `int`, got `str` - at `$.qty```), echoing the member's ``req_id``
when it can be read.

JSON nested deeper than ``MAX_DEPTH`` levels is refused before any parser recurses into it
(msgspec would raise ``RecursionError`` at about a thousand levels).

Every encoder and decoder of a wire message lives here, built once and shared by the processes:
client requests and the replies a client reads (``request_decoder``, ``gateway_message_decoder``,
``marketdata_request_decoder``, ``marketdata_message_decoder``), the engine's command port in
both directions (``envelope_decoder``; ``encode_reply`` / ``encode_push`` and, on the gateway,
``engine_frame_decoder`` and ``routing_header_decoder``) and its event port
(``stream_request_decoder``, ``engine_event_decoder``, ``stream_control_decoder``).

Text frames may be given as ``str`` (websockets' text frames) or ``bytes`` (``recv(decode=False)``):
msgspec reads either directly, so neither is converted to the other on the way in.
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

import msgspec

from exchange.protocol.internal import (
    EngineHeartbeat,
    EnginePush,
    EngineReply,
    EngineSnapshot,
    GatewayToEngine,
    RoutingHeader,
    StreamRequest,
)
from exchange.protocol.messages import (
    AccountUpdate,
    ClientRequest,
    EngineEvent,
    Error,
    ErrorCode,
    ExecutionReport,
    GatewayMessage,
    LoggedIn,
    MarketDataMessage,
    MarketDataRequest,
    MarketStatus,
    NewOrder,
    News,
    OrderState,
    Registered,
    RoundStarted,
    ref_for,
)
from exchange.protocol.rest import AmendBody

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])


encode = _encoder.encode
"""Encode one message (or a list of messages, a batch) to JSON bytes. (The encoder's bound
method itself: this is called once per event on the engine's hot path.)"""


def encode_batch(messages: list[Any]) -> bytes:
    """Encode several messages as one frame: a single object when there is one, else an array."""
    if len(messages) == 1:
        return _encoder.encode(messages[0])
    return _encoder.encode(messages)


def encode_reply(envelope_id: int, messages: list[bytes]) -> bytes:
    """An ``EngineReply`` frame for ``envelope_id`` holding ``messages`` (each already
    encoded), byte for byte what encoding the Struct would give, at less than half its cost
    (no ``msgspec.Raw`` per message, no Struct per reply)."""
    return b'{"type":"reply","id":%d,"messages":[%b]}' % (envelope_id, b",".join(messages))


def encode_push(events: list[bytes]) -> bytes:
    """An ``EnginePush`` frame holding ``events`` (each already encoded); as ``encode_reply``."""
    return b'{"type":"push","events":[%b]}' % b",".join(events)


def http_error_body(code: ErrorCode, text: str) -> bytes:
    """The JSON body of an HTTP error answer (gateway handshake, relay API, unknown paths):
    ``{"type":"error","code":…,"text":…,"ref":null}``."""
    return _encoder.encode({"type": "error", "code": code, "text": text, "ref": None})


MAX_DEPTH = 32
"""The deepest nesting of arrays and objects a frame may have (a batch array counts as one)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # "unrolled": no per-character group
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"\\')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_DEPTH_TEXT = f"JSON nested deeper than {MAX_DEPTH} levels"
_JSON_SPACE = " \t\n\r\x0b\x0c"  # what ``bytes.lstrip()`` strips, for str frames


def too_deep(frame: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``frame`` nests arrays/objects deeper than ``limit`` (or could make a parser
    recurse that deep: unbalanced brackets count as open). Never raises; strings are skipped.

    Cheap for ordinary messages: one with at most ``limit`` brackets is never scanned.
    """
    if isinstance(frame, str):
        if frame.count("[") + frame.count("{") <= limit:
            return False
        frame = frame.encode("utf-8", "surrogatepass")  # rare: scanned as bytes
    elif frame.count(b"[") + frame.count(b"{") <= limit:
        return False
    # Fast path: keep brackets, quotes and backslashes, then drop the quote pairs of strings
    # that hold none of them. If no quote or backslash is left, no string held a bracket
    # (its quotes would be split by it), so what is left is the structure. Else scan strings.
    brackets = frame.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets or b"\\" in brackets:
        brackets = _STRING.sub(b"", frame).translate(None, _NOT_BRACKETS)
    levels = 0
    while brackets:
        inner = _INNERMOST.sub(b"", brackets)  # one level: the pairs with nothing inside
        if len(inner) == len(brackets):  # only unmatched brackets left
            return levels + brackets.count(b"[") + brackets.count(b"{") > limit
        levels += 1
        if levels > limit:
            return True
        brackets = inner
    return False


def _echoable(value: Any) -> str | int | None:
    """``value`` if an error may echo it as a ref or req_id (a string or 64-bit integer)."""
    if isinstance(value, str):
        return value
    if type(value) is int and -(2**63) < value < 2**63:
        return value
    return None


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """The JSON object ``raw`` holds, schema-free, or None when it holds anything else or
    does not decode. Never raises (call it on input ``too_deep`` let through, or accept that
    very deep input is simply None)."""
    try:
        value = _any_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def split_frame(frame: bytes) -> list[bytes]:
    """The members of a frame holding a JSON array, else the frame itself (also when the
    array does not split: it is then one bad member). Never raises."""
    if frame.lstrip()[:1] != b"[":
        return [frame]
    try:
        return [bytes(member) for member in _raw_list_decoder.decode(frame)]
    except (msgspec.DecodeError, RecursionError):
        return [frame]


def error_ids(raw: bytes | str) -> tuple[str | int | None, str | int | None]:
    """``(ref, req_id)`` of an error about ``raw`` (``messages.ref_for``: its client_order_id,
    else its req_id).

    Never raises: an undecodable or non-object message (or an id no reply could carry) has
    neither.
    """
    value = json_object(raw)
    if value is None:
        return None, None
    req_id = _echoable(value.get("req_id"))
    return ref_for(_echoable(value.get("client_order_id")), req_id), req_id


def error_ref(raw: bytes | str) -> str | int | None:
    """The ``ref`` an error about ``raw`` carries: its client_order_id, else req_id, else None.

    Never raises: an undecodable or non-object message has no ref.
    """
    return error_ids(raw)[0]


class FrameDecoder(Generic[T]):
    """Decodes frames of one direction into messages of the union ``T``.

    ``decode_frame`` never raises: it returns one entry per message of the frame, each either
    a decoded message or an ``Error`` (``invalid_message``) describing what was wrong.
    """

    def __init__(self, union: Any) -> None:
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union)

    def decode_one(self, raw: bytes | str) -> T | Error:
        """Decode a single message, or describe why it is invalid. Never raises.

        Call it on input already checked with ``too_deep`` (``decode_frame`` does).
        """
        try:
            return self._decoder.decode(raw)
        except UnicodeEncodeError:  # a str with lone surrogates (websockets never gives one)
            assert isinstance(raw, str)
            return self.decode_one(raw.encode("utf-8", "surrogatepass"))
        except msgspec.ValidationError as exc:
            ref, req_id = error_ids(raw)
            return Error(code="invalid_message", text=str(exc), ref=ref, req_id=req_id)
        except msgspec.DecodeError as exc:
            return Error(code="invalid_message", text=str(exc), ref=None)
        except RecursionError:  # too_deep lets none through; a last line of defence
            return Error(code="invalid_message", text=_DEPTH_TEXT, ref=None)

    def decode_frame(self, frame: bytes | str) -> tuple[list[T | Error], bool]:
        """Decode a frame; returns its messages in order and whether it was a batch.

        Never raises, whatever the frame holds.
        """
        if isinstance(frame, str):
            batch = frame.lstrip(_JSON_SPACE).startswith("[")
        else:
            batch = frame.lstrip().startswith(b"[")
        if not batch:
            if too_deep(frame):
                return [Error(code="invalid_message", text=_DEPTH_TEXT, ref=None)], False
            return [self.decode_one(frame)], False
        # A batch: split it first (msgspec skips members without recursing in Python, and
        # refuses ~1,000 levels with RecursionError), then check each member's depth under
        # the batch's own level, so that ordinary batches are never scanned as a whole.
        try:
            members = _raw_list_decoder.decode(frame)
        except UnicodeEncodeError:  # a str with lone surrogates: split its bytes instead
            assert isinstance(frame, str)
            return self.decode_frame(frame.encode("utf-8", "surrogatepass"))
        except msgspec.DecodeError as exc:
            return [Error(code="invalid_message", text=str(exc), ref=None)], True
        except RecursionError:
            return [Error(code="invalid_message", text=_DEPTH_TEXT, ref=None)], True
        if not members:
            return [Error(code="invalid_message", text="Empty batch", ref=None)], True
        return [self._decode_member(bytes(member)) for member in members], True

    def _decode_member(self, raw: bytes) -> T | Error:
        """A batch member: as ``decode_one``, one level of nesting being the batch's."""
        if too_deep(raw, MAX_DEPTH - 1):
            return Error(code="invalid_message", text=_DEPTH_TEXT, ref=None)
        return self.decode_one(raw)


request_decoder: FrameDecoder[ClientRequest] = FrameDecoder(ClientRequest)
"""Client → gateway requests (order entry)."""

gateway_message_decoder: FrameDecoder[GatewayMessage] = FrameDecoder(GatewayMessage)
"""Gateway → client messages (what a client such as a bot reads)."""

marketdata_request_decoder: FrameDecoder[MarketDataRequest] = FrameDecoder(MarketDataRequest)
"""Client → relay requests (subscriptions)."""

marketdata_message_decoder: FrameDecoder[MarketDataMessage] = FrameDecoder(MarketDataMessage)
"""Relay → client messages (bots, the monitor)."""

envelope_decoder: FrameDecoder[GatewayToEngine] = FrameDecoder(GatewayToEngine)
"""Gateway → engine command-port envelopes (one at a time: the port splits frames itself)."""

engine_frame_decoder: msgspec.json.Decoder[
    list[EngineReply | EnginePush] | EngineReply | EnginePush
] = msgspec.json.Decoder(list[EngineReply | EnginePush] | EngineReply | EnginePush)
"""Engine → gateway command-port frames: one ``EngineReply``/``EnginePush`` or an array."""

routing_header_decoder: msgspec.json.Decoder[RoutingHeader] = msgspec.json.Decoder(RoutingHeader)
"""The ``RoutingHeader`` of one private message from the engine."""

private_event_decoder: msgspec.json.Decoder[
    ExecutionReport | AccountUpdate | News | RoundStarted | MarketStatus
] = msgspec.json.Decoder(ExecutionReport | AccountUpdate | News | RoundStarted | MarketStatus)
"""One event that fans out (``internal.fans_out``) or is broadcast (``internal.broadcast``),
decoded in full."""

login_answer_decoder: msgspec.json.Decoder[LoggedIn | Registered | Error] = msgspec.json.Decoder(
    LoggedIn | Registered | Error
)
"""The engine's answer to ``Authenticate`` / ``RegisterAccount`` (its first message)."""

new_order_body_decoder: FrameDecoder[NewOrder] = FrameDecoder(NewOrder)
"""REST ``POST /api/v1/orders`` bodies (``type`` optional; if present it must be ``new_order``).
Use ``decode_one`` (a body is never a batch) after ``too_deep``."""

amend_body_decoder: FrameDecoder[AmendBody] = FrameDecoder(AmendBody)
"""REST ``PATCH /api/v1/orders/{order_id}`` bodies; as ``new_order_body_decoder``."""

rest_reply_decoder: msgspec.json.Decoder[GatewayMessage | OrderState] = msgspec.json.Decoder(
    GatewayMessage | OrderState
)
"""What a REST request's direct replies hold (to pick the HTTP status and body)."""

stream_request_decoder: msgspec.json.Decoder[StreamRequest] = msgspec.json.Decoder(StreamRequest)
"""Consumer → engine: the event port's first message."""

engine_event_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(list[EngineEvent])
"""Decodes a batch (JSON array) of engine events from the internal event stream."""

stream_control_decoder: msgspec.json.Decoder[EngineSnapshot | EngineHeartbeat] = (
    msgspec.json.Decoder(EngineSnapshot | EngineHeartbeat)
)
"""Event-port frames that are single objects: a snapshot or a heartbeat."""

__all__ = [
    "FrameDecoder",
    "amend_body_decoder",
    "encode",
    "encode_batch",
    "encode_push",
    "encode_reply",
    "engine_event_decoder",
    "engine_frame_decoder",
    "envelope_decoder",
    "error_ids",
    "error_ref",
    "gateway_message_decoder",
    "http_error_body",
    "json_object",
    "login_answer_decoder",
    "marketdata_message_decoder",
    "marketdata_request_decoder",
    "new_order_body_decoder",
    "private_event_decoder",
    "request_decoder",
    "rest_reply_decoder",
    "routing_header_decoder",
    "split_frame",
    "stream_control_decoder",
    "stream_request_decoder",
    "too_deep",
]
