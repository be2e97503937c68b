"""Replies the gateway makes itself, without the engine (pure functions, encoded JSON out).

- ``rejection(request, account, reason, text, ts, retry_after_ms)``: what a request that cannot
  reach the engine gets, shaped by its type: ``new_order`` -> an ``execution_report``
  ``rejected``; ``cancel_order``/``amend_order`` -> a ``cancel_reject``; anything else -> an
  ``error`` whose code is the reason. ``seq`` is null on all of them (no engine event).
- ``error(code, text, ref)`` and ``ref_of(message)``: ``ref`` is the request's
  ``client_order_id``, else its ``req_id``, else null.
"""

from __future__ import annotations

from typing import Any

import msgspec

from exchange.protocol.messages import (
    AmendOrder,
    CancelOrder,
    CancelReject,
    Error,
    ErrorCode,
    ExecutionReport,
    NewOrder,
    RejectReason,
)

_encode = msgspec.json.Encoder().encode


def ref_of(message: Any) -> str | int | None:
    """The ``ref`` an error about ``message`` carries."""
    client_order_id = getattr(message, "client_order_id", None)
    if client_order_id is not None:
        return client_order_id
    return getattr(message, "req_id", None)


def error(
    code: ErrorCode, text: str, ref: str | int | None, retry_after_ms: int | None = None
) -> bytes:
    return _encode(Error(code=code, text=text, ref=ref, retry_after_ms=retry_after_ms))


def rejection(
    request: Any,
    account: str,
    reason: RejectReason,
    text: str,
    ts: int,
    retry_after_ms: int | None = None,
) -> bytes:
    """The reply to ``request`` refused by the gateway for ``reason`` (``rate_limited`` or
    ``engine_unavailable``)."""
    kind = type(request)
    if kind is NewOrder:
        return _encode(
            ExecutionReport(
                exec_type="rejected",
                status="rejected",
                order_id=None,
                client_order_id=request.client_order_id,
                account=account,
                symbol=request.symbol,
                side=request.side,
                order_type=request.order_type,
                tif=request.tif,
                price=request.price,
                qty=request.qty,
                cum_qty=0,
                leaves_qty=0,
                avg_px=0.0,
                reject_reason=reason,
                text=text,
                post_only=request.post_only,
                retry_after_ms=retry_after_ms,
                req_id=request.req_id,
                ts=ts,
                seq=None,
            )
        )
    if kind is CancelOrder or kind is AmendOrder:
        return _encode(
            CancelReject(
                request="cancel" if kind is CancelOrder else "amend",
                order_id=request.order_id,
                client_order_id=request.client_order_id,
                reject_reason=reason,
                text=text,
                status=None,
                account=account,
                retry_after_ms=retry_after_ms,
                req_id=request.req_id,
                ts=ts,
                seq=None,
            )
        )
    code: ErrorCode = "rate_limited" if reason == "rate_limited" else "engine_unavailable"
    return error(code, text, ref_of(request), retry_after_ms)
