"""Replies made without the core (pure functions, encoded JSON out): the gateway's own, and
the engine's answers to commands refused at its boundary before they are journaled.

- ``rejection(request, account, reason, text, ts, retry_after_ms)``: what a request refused
  before the core gets, shaped by its type: ``new_order`` -> an ``execution_report``
  ``rejected``; ``cancel_order``/``amend_order`` -> a ``cancel_reject``; anything else -> an
  ``error`` whose code is the reason (``rate_limited``, ``engine_unavailable``).
  ``seq`` is null on all of them (no engine event). A ``qty`` no reply can carry echoes as 0.
- ``error(code, text, ref, req_id=...)`` and ``error_about(code, text, message)``: ``ref`` is
  the request's ``client_order_id``, else its ``req_id``, else null; ``req_id`` echoes the
  request's own.
"""

from __future__ import annotations

from typing import Any

from exchange.protocol.bounds import echo_int
from exchange.protocol.codec import encode as _encode
from exchange.protocol.messages import (
    AmendOrder,
    CancelOrder,
    CancelReject,
    Error,
    ErrorCode,
    ExecutionReport,
    NewOrder,
    RejectReason,
    ref_for,
)


def ref_of(message: Any) -> str | int | None:
    """The ``ref`` an error about ``message`` carries (``messages.ref_for``)."""
    return ref_for(getattr(message, "client_order_id", None), getattr(message, "req_id", None))


def error(
    code: ErrorCode,
    text: str,
    ref: str | int | None,
    retry_after_ms: int | None = None,
    req_id: str | int | None = None,
) -> bytes:
    """An encoded ``error``."""
    return _encode(
        Error(code=code, text=text, ref=ref, retry_after_ms=retry_after_ms, req_id=req_id)
    )


def error_about(
    code: ErrorCode, text: str, message: Any, retry_after_ms: int | None = None
) -> bytes:
    """An encoded ``error`` answering ``message``: its ``ref`` and its ``req_id`` echoed."""
    return error(code, text, ref_of(message), retry_after_ms, getattr(message, "req_id", None))


def rejection(
    request: Any,
    account: str,
    reason: RejectReason,
    text: str,
    ts: int,
    retry_after_ms: int | None = None,
) -> bytes:
    """The reply to ``request`` refused before the core for ``reason`` (``rate_limited``,
    ``engine_unavailable``, or ``invalid_qty``/``invalid_price`` for numbers out of range)."""
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
                qty=echo_int(request.qty),
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
                expire_at=request.expire_at,
                trigger_price=request.trigger_price,
                activate_at=request.activate_at,
                reduce_only=request.reduce_only,
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
    return error_about(code, text, request, retry_after_ms)
