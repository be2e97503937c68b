"""The core's outgoing events, one builder per kind: plain functions from core objects to the
protocol's frozen Structs, in display units (exact, rounded once: ``exchange.core.instruments``).

Callers pass keyword arguments; the builders construct the wide Structs positionally (a
27-field ``ExecutionReport`` by keyword costs several times as much). No builder changes any
state: the caller assigns the ``seq`` and appends the event.
"""

from __future__ import annotations

from typing import Any, Literal

from exchange.core.accounts import AccountState
from exchange.core.book import Order, OrderBook
from exchange.core.instruments import money_to_float
from exchange.protocol.bounds import echo_int
from exchange.protocol.messages import (
    Aggressor,
    Bbo,
    CancelReject,
    Error,
    ExecType,
    ExecutionReport,
    Fill,
    Liquidity,
    NewOrder,
    OrderInfo,
    OrderStatus,
    RejectReason,
)
from exchange.protocol.replies import ref_of


def status_of(order: Order) -> OrderStatus:
    """The status a live (or just filled) order has: new, partially filled or filled."""
    if order.leaves == 0:
        return "filled"
    return "partially_filled" if order.cum_qty else "new"


def order_report(
    order: Order,
    exec_type: ExecType,
    status: OrderStatus,
    *,
    ts: int,
    seq: int,
    req_id: str | int | None = None,
    reason: RejectReason | None = None,
    text: str | None = None,
) -> ExecutionReport:
    """An order's transition without a fill: new, canceled, replaced, expired."""
    instrument = order.book.instrument
    cum = order.cum_qty
    return ExecutionReport(
        exec_type,  # exec_type
        status,  # status
        order.order_id,  # order_id
        order.client_order_id,  # client_order_id
        order.account.name,  # account
        order.book.symbol,  # symbol
        "buy" if order.is_buy else "sell",  # side
        order.order_type,  # order_type
        order.tif,  # tif
        instrument.to_price(order.price) if order.price else None,  # price
        order.qty,  # qty
        cum,  # cum_qty
        order.leaves,  # leaves_qty
        instrument.avg_price(order.cum_cost, cum) if cum else 0.0,  # avg_px
        None,  # trade_id
        None,  # last_px
        None,  # last_qty
        None,  # liquidity
        None,  # fee
        reason,  # reject_reason
        text,  # text
        order.post_only,  # post_only
        order.liquidation,  # liquidation
        None,  # retry_after_ms
        req_id,  # req_id
        ts,  # ts
        seq,  # seq
        order.expire_at,  # expire_at
        instrument.to_price(order.trigger) if order.trigger else None,  # trigger_price
        order.activate_at,  # activate_at
        order.reduce_only,  # reduce_only
        order.triggered,  # triggered
        order.display or None,  # display_qty
    )


def trade_report(
    order: Order,
    *,
    trade_id: int,
    price: float,
    qty: int,
    liquidity: Liquidity,
    fee: int,
    ts: int,
    seq: int,
) -> ExecutionReport:
    """One side's report of a trade: ``qty`` at ``price`` (display), ``fee`` in money units."""
    instrument = order.book.instrument
    cum = order.cum_qty
    return ExecutionReport(
        "trade",  # exec_type
        "filled" if order.leaves == 0 else "partially_filled",  # status
        order.order_id,  # order_id
        order.client_order_id,  # client_order_id
        order.account.name,  # account
        order.book.symbol,  # symbol
        "buy" if order.is_buy else "sell",  # side
        order.order_type,  # order_type
        order.tif,  # tif
        instrument.to_price(order.price) if order.price else None,  # price
        order.qty,  # qty
        cum,  # cum_qty
        order.leaves,  # leaves_qty
        instrument.avg_price(order.cum_cost, cum),  # avg_px
        trade_id,  # trade_id
        price,  # last_px
        qty,  # last_qty
        liquidity,  # liquidity
        money_to_float(fee),  # fee
        None,  # reject_reason
        None,  # text
        order.post_only,  # post_only
        order.liquidation,  # liquidation
        None,  # retry_after_ms
        None,  # req_id
        ts,  # ts
        seq,  # seq
        order.expire_at,  # expire_at
        instrument.to_price(order.trigger) if order.trigger else None,  # trigger_price
        order.activate_at,  # activate_at
        order.reduce_only,  # reduce_only
        order.triggered,  # triggered
        order.display or None,  # display_qty
    )


def rejected_report(
    account: AccountState,
    cmd: NewOrder,
    *,
    reason: RejectReason,
    text: str,
    ts: int,
    seq: int,
) -> ExecutionReport:
    """An order refused up front: no order id; echoes what the request said."""
    return ExecutionReport(
        "rejected",  # exec_type
        "rejected",  # status
        None,  # order_id
        cmd.client_order_id,  # client_order_id
        account.name,  # account
        cmd.symbol,  # symbol
        cmd.side,  # side
        cmd.order_type,  # order_type
        cmd.tif,  # tif
        cmd.price,  # price
        echo_int(cmd.qty),  # qty
        0,  # cum_qty
        0,  # leaves_qty
        0.0,  # avg_px
        None,  # trade_id
        None,  # last_px
        None,  # last_qty
        None,  # liquidity
        None,  # fee
        reason,  # reject_reason
        text,  # text
        cmd.post_only,  # post_only
        False,  # liquidation
        None,  # retry_after_ms
        cmd.req_id,  # req_id
        ts,  # ts
        seq,  # seq
        cmd.expire_at,  # expire_at
        cmd.trigger_price,  # trigger_price
        cmd.activate_at,  # activate_at
        cmd.reduce_only,  # reduce_only
        False,  # triggered
        cmd.display_qty,  # display_qty
    )


def cancel_reject(
    *,
    request: Literal["cancel", "amend"],
    account: str,
    order_id: int | None,
    client_order_id: str | None,
    reason: RejectReason,
    text: str,
    status: OrderStatus | None,
    req_id: str | int | None,
    ts: int,
    seq: int,
) -> CancelReject:
    """A cancel or amend that could not be done."""
    return CancelReject(
        request=request,
        order_id=order_id,
        client_order_id=client_order_id,
        reject_reason=reason,
        text=text,
        status=status,
        account=account,
        req_id=req_id,
        ts=ts,
        seq=seq,
    )


def fill_event(
    *,
    book: OrderBook,
    trade_id: int,
    price: float,
    qty: int,
    aggressor: Aggressor,
    buyer: Order,
    seller: Order,
    buyer_fee: int,
    seller_fee: int,
    liquidation: bool,
    ts: int,
    seq: int,
) -> Fill:
    """The trade with both sides named (the exporter's; the relay strips the names)."""
    return Fill(
        book.symbol,  # symbol
        trade_id,  # trade_id
        price,  # price
        qty,  # qty
        aggressor,  # aggressor
        buyer.account.name,  # buy_account
        seller.account.name,  # sell_account
        buyer.order_id,  # buy_order_id
        seller.order_id,  # sell_order_id
        money_to_float(buyer_fee),  # buy_fee
        money_to_float(seller_fee),  # sell_fee
        liquidation,  # liquidation
        ts,  # ts
        seq,  # seq
    )


def bbo_event(book: OrderBook, *, ts: int, seq: int) -> Bbo:
    """The book's best bid and offer as ``book.last_bbo`` holds them (ticks, lots)."""
    bid, bid_qty, ask, ask_qty = book.last_bbo
    to_price = book.instrument.to_price
    return Bbo(
        book.symbol,  # symbol
        to_price(bid) if bid else None,  # bid
        bid_qty,  # bid_qty
        to_price(ask) if ask else None,  # ask
        ask_qty,  # ask_qty
        ts,  # ts
        seq,  # seq
    )


def invalid(cmd: Any, text: str) -> Error:
    """``invalid_message`` about a command the core cannot apply (no ``seq``): the protocol's
    ``ref`` rule, and the request's ``req_id``."""
    return Error(
        code="invalid_message", text=text, ref=ref_of(cmd), req_id=getattr(cmd, "req_id", None)
    )


def order_info(order: Order) -> OrderInfo:
    """A live order as ``get_orders`` lists it."""
    instrument = order.book.instrument
    cum = order.cum_qty
    return OrderInfo(
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        symbol=order.book.symbol,
        side="buy" if order.is_buy else "sell",
        order_type=order.order_type,
        tif=order.tif,
        price=instrument.to_price(order.price) if order.price else None,
        qty=order.qty,
        cum_qty=cum,
        leaves_qty=order.leaves,
        avg_px=instrument.avg_price(order.cum_cost, cum) if cum else 0.0,
        status=status_of(order),
        post_only=order.post_only,
        expire_at=order.expire_at,
        trigger_price=instrument.to_price(order.trigger) if order.trigger else None,
        activate_at=order.activate_at,
        reduce_only=order.reduce_only,
        triggered=order.triggered,
        display_qty=order.display or None,
    )
