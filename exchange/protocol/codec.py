"""The one codec: JSON encoders and decoders, built once, for every direction of the contract.

Frames are JSON text: one message, or a JSON array of messages (a batch). ``decode_frame``
splits a batch and decodes every member on its own, so one bad member never spoils the
others; each bad member becomes an ``Error`` with code ``invalid_message`` and msgspec's own
validation text (``Expected `int`, got `str` - at `$.qty```).
"""

from __future__ import annotations

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


def error_ref(raw: bytes | str) -> str | int | None:
    """The ``ref`` an error about ``raw`` carries: its client_order_id, else req_id, else None.

    Never raises: an undecodable or non-object message has no ref.
    """
    try:
        value = _any_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    coid = value.get("client_order_id")
    if isinstance(coid, str | int) and not isinstance(coid, bool):
        return coid
    req_id = value.get("req_id")
    if isinstance(req_id, str | int) and not isinstance(req_id, bool):
        return req_id
    return None


class FrameDecoder(Generic[T]):
    """Decodes frames of one direction into messages of the union ``T``.

    ``decode_frame`` never raises: it returns one entry per message of the frame, each either
    a decoded message or an ``Error`` (``invalid_message``) describing what was wrong.
    """

    def __init__(self, union: Any) -> None:
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union)

    def decode_one(self, raw: bytes | str) -> T | Error:
        """Decode a single message, or describe why it is invalid."""
        try:
            return self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return Error(code="invalid_message", text=str(exc), ref=error_ref(raw))
        except msgspec.DecodeError as exc:
            return Error(code="invalid_message", text=str(exc), ref=None)

    def decode_frame(self, frame: bytes | str) -> tuple[list[T | Error], bool]:
        """Decode a frame; returns its messages in order and whether it was a batch."""
        if isinstance(frame, str):
            frame = frame.encode()
        stripped = frame.lstrip()
        if not stripped.startswith(b"["):
            return [self.decode_one(frame)], False
        try:
            members = _raw_list_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return [Error(code="invalid_message", text=str(exc), ref=None)], True
        if not members:
            return [Error(code="invalid_message", text="Empty batch", ref=None)], True
        return [self.decode_one(bytes(member)) for member in members], True


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
    "error_ref",
    "marketdata_request_decoder",
    "request_decoder",
]
