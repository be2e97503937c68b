"""The one codec: JSON encoders and decoders, built once, for every direction of the contract.

Frames are JSON text: one message, or a JSON array of messages (a batch). ``decode_frame``
splits a batch and decodes every member on its own, so one bad member never spoils the
others; each bad member becomes an ``Error`` with code ``invalid_message`` and msgspec's own
validation text (``Expected `int`, got `str` - at `$.qty```), echoing the member's ``req_id``
when it can be read.

JSON nested deeper than ``MAX_DEPTH`` levels is refused before any parser recurses into it
(msgspec would raise ``RecursionError`` at about a thousand levels).
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

import msgspec

from exchange.protocol.messages import (
    ClientRequest,
    EngineEvent,
    Error,
    MarketDataRequest,
)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def encode(message: Any) -> bytes:
    """Encode one message (or a list of messages, a batch) to JSON bytes."""
    return _encoder.encode(message)


def encode_batch(messages: list[Any]) -> bytes:
    """Encode several messages as one frame: a single object when there is one, else an array."""
    if len(messages) == 1:
        return _encoder.encode(messages[0])
    return _encoder.encode(messages)


MAX_DEPTH = 32
"""The deepest nesting of arrays and objects a frame may have (a batch array counts as one)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # "unrolled": no per-character group
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"\\')
_INNERMOST = re.compile(rb"\[\]|\{\}")
_DEPTH_TEXT = f"JSON nested deeper than {MAX_DEPTH} levels"


def too_deep(frame: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``frame`` nests arrays/objects deeper than ``limit`` (or could make a parser
    recurse that deep: unbalanced brackets count as open). Never raises; strings are skipped.

    Cheap for ordinary messages: one with at most ``limit`` brackets is never scanned.
    """
    if frame.count(b"[") + frame.count(b"{") <= limit:
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


def error_ids(raw: bytes | str) -> tuple[str | int | None, str | int | None]:
    """``(ref, req_id)`` of an error about ``raw``: ref is its client_order_id, else req_id.

    Never raises: an undecodable or non-object message (or an id no reply could carry) has
    neither.
    """
    try:
        value = _any_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(value, dict):
        return None, None
    req_id = _echoable(value.get("req_id"))
    coid = _echoable(value.get("client_order_id"))
    return (req_id if coid is None else coid), req_id


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
            frame = frame.encode("utf-8", "surrogatepass")
        if not frame.lstrip().startswith(b"["):
            if too_deep(frame):
                return [Error(code="invalid_message", text=_DEPTH_TEXT, ref=None)], False
            return [self.decode_one(frame)], False
        # A batch: split it first (msgspec skips members without recursing in Python, and
        # refuses ~1,000 levels with RecursionError), then check each member's depth under
        # the batch's own level, so that ordinary batches are never scanned as a whole.
        try:
            members = _raw_list_decoder.decode(frame)
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

marketdata_request_decoder: FrameDecoder[MarketDataRequest] = FrameDecoder(MarketDataRequest)
"""Client → relay requests (subscriptions)."""

engine_event_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(list[EngineEvent])
"""Decodes a batch (JSON array) of engine events from the internal event stream."""

__all__ = [
    "FrameDecoder",
    "encode",
    "encode_batch",
    "engine_event_decoder",
    "error_ids",
    "error_ref",
    "marketdata_request_decoder",
    "request_decoder",
    "too_deep",
]
