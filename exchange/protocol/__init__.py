"""Wire messages of the public contract and the one codec that reads and writes them.

Imports only msgspec and the standard library.
"""

from __future__ import annotations

from exchange.protocol import messages
from exchange.protocol.codec import (
    FrameDecoder,
    encode,
    encode_batch,
    engine_event_decoder,
    marketdata_request_decoder,
    request_decoder,
)

__all__ = [
    "FrameDecoder",
    "encode",
    "encode_batch",
    "engine_event_decoder",
    "marketdata_request_decoder",
    "messages",
    "request_decoder",
]
