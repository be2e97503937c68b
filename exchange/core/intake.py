"""Intake: a ``new_order`` from checks to its first reports (PROTOCOL §3, §3.1, §3.2).

The order of the checks is the protocol's: the symbol, the trading status
(``status.status_refusal``), the field combinations (market price, post-only, conditional and
scheduled fields, icebergs, GTD), the account (liquidating), the numbers (qty, price and
trigger on the tick), reduce-only against the position, then the pre-trade risk checks
(``risk.check_new``). An order refused up front gets one ``rejected`` report and no id; an
accepted one gets ``new``, then rests, trades (``matching.execute``) or waits (``triggers``).

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from exchange.core.accounts import AccountState
from exchange.core.book import OPEN, Order
from exchange.core.clock import schedule
from exchange.core.matching import execute
from exchange.core.orders import report, rest
from exchange.core.reports import invalid, rejected_report
from exchange.core.risk import band, check_new, reducible, reserve_price, would_cross
from exchange.core.status import status_refusal
from exchange.core.trigger_book import CONDITIONAL_TYPES
from exchange.core.triggers import accept as accept_pending
from exchange.core.triggers import run as run_triggers
from exchange.core.triggers import watch_reduce_only
from exchange.core.venue import Venue
from exchange.protocol.bounds import MAX_QTY
from exchange.protocol.messages import NewOrder, RejectReason


def new_order(venue: Venue, account: AccountState, cmd: NewOrder) -> None:
    """Accept, refuse or execute a ``new_order``: every check of PROTOCOL §3 and §3.1 (the
    trading status, the field combinations, the numbers, ``risk.check_new``), then the order
    rests, trades, waits (conditional or scheduled) or ends, with its reports."""
    book = venue.books.get(cmd.symbol)
    if book is None:
        reject(venue, account, cmd, "unknown_symbol", f"unknown symbol {cmd.symbol!r}")
        return
    if book.state != OPEN:
        problem = status_refusal(book, cmd)
        if problem is not None:
            reject(venue, account, cmd, "market_halted", problem)
            return
    instrument = book.instrument
    order_type = cmd.order_type
    conditional = order_type in CONDITIONAL_TYPES
    is_market = order_type == "market" or order_type == "stop" or order_type == "take_profit"
    tif = cmd.tif
    if order_type == "market" and cmd.price is not None:
        venue.events.append(invalid(cmd, "market orders carry no price"))
        return
    if is_market and tif == "gtc":
        tif = "ioc"
    if cmd.post_only and (is_market or (tif != "gtc" and tif != "gtd")):
        venue.events.append(invalid(cmd, "post_only needs a gtc or gtd limit order"))
        return
    if conditional or cmd.trigger_price is not None or cmd.activate_at is not None:
        problem = conditional_problem(venue, cmd, conditional, is_market)
        if problem is not None:
            reject(venue, account, cmd, "invalid_order", problem)
            return
    if cmd.display_qty is not None and (order_type != "limit" or (tif != "gtc" and tif != "gtd")):
        text = "display_qty needs a gtc or gtd limit order"
        reject(venue, account, cmd, "invalid_order", text)
        return
    expire_at = cmd.expire_at
    if tif == "gtd":
        if is_market:
            reject(venue, account, cmd, "invalid_order", "a gtd order must be a limit order")
            return
        if expire_at is None:
            reject(venue, account, cmd, "invalid_order", "tif gtd needs expire_at")
            return
        if expire_at <= venue.ts:
            reject(venue, account, cmd, "invalid_order", "expire_at is not in the future")
            return
        if cmd.activate_at is not None and expire_at <= cmd.activate_at:
            reject(venue, account, cmd, "invalid_order", "expire_at must be after activate_at")
            return
    elif expire_at is not None:
        reject(venue, account, cmd, "invalid_order", "expire_at needs tif gtd")
        return
    if account.liquidating:
        reject(venue, account, cmd, "account_liquidating", "account is being liquidated")
        return
    qty = cmd.qty
    if qty <= 0 or qty > MAX_QTY:
        reject(venue, account, cmd, "invalid_qty", "qty must be a positive whole number of lots")
        return
    price = 0
    if not is_market:
        ticks = instrument.to_ticks(cmd.price) if cmd.price is not None else None
        if ticks is None:
            text = (
                "a limit order needs a price"
                if cmd.price is None
                else f"price must be a positive multiple of {instrument.tick_size}"
            )
            reject(venue, account, cmd, "invalid_price", text)
            return
        price = ticks
    trigger = 0
    if conditional:
        ticks = instrument.to_ticks(cmd.trigger_price)  # type: ignore[arg-type]
        if ticks is None:
            text = f"trigger_price must be a positive multiple of {instrument.tick_size}"
            reject(venue, account, cmd, "invalid_price", text)
            return
        trigger = ticks
    is_buy = cmd.side == "buy"
    cut_text = None
    if cmd.reduce_only:
        holding = account.holdings.get(book.symbol)
        allowed = reducible(holding, is_buy) if holding is not None else 0
        if allowed == 0:
            text = f"reduce_only: no {'short' if is_buy else 'long'} position to reduce"
            reject(venue, account, cmd, "reduce_only", text)
            return
        if qty > allowed:
            cut_text = f"reduce_only: qty cut from {qty} to {allowed}, the position"
            qty = allowed
    waits = conditional or cmd.activate_at is not None
    reserve = 0
    if waits:
        reserve = reserve_price(book, is_buy, price, trigger)
        # A conditional limit price is judged against the band around its trigger price
        # (where the market will be when it fires); the band now is checked on firing.
        limits = instrument.band_limits(trigger) if conditional else band(book)
    else:
        limits = band(book)
    rests = waits or (not is_market and (tif == "gtc" or tif == "gtd"))
    refusal = check_new(account, book, cmd, qty, price, limits, rests, reserve)
    if refusal is not None:
        reject(venue, account, cmd, refusal[0], refusal[1])
        return
    order_id = venue.next_order_id
    venue.next_order_id = order_id + 1
    order = Order(
        order_id=order_id,
        account=account,
        book=book,
        is_buy=is_buy,
        price=price,
        qty=qty,
        leaves=qty,
        client_order_id=cmd.client_order_id,
        order_type=order_type,
        tif=tif,
        post_only=cmd.post_only,
        stp=cmd.stp,
        expire_at=expire_at,
        trigger=trigger,
        activate_at=cmd.activate_at,
        reduce_only=cmd.reduce_only,
        reserve=reserve,
        display=cmd.display_qty or 0,
    )
    start = len(venue.events)
    report(venue, order, "new", "new", cmd.req_id, None, cut_text)
    if cmd.reduce_only:
        watch_reduce_only(venue, order)
    if waits:
        accept_pending(venue, order)
        if expire_at is not None:
            schedule(venue, order)
        if venue.firing:
            run_triggers(venue, start)
        return
    if is_market:
        execute(venue, order, limits[1] if is_buy else limits[0], False)
    elif rests and not would_cross(book, is_buy, price):
        rest(venue, order)  # the common case: a passive order joins the book
        if expire_at is not None:
            schedule(venue, order)
        return
    else:
        execute(venue, order, price, rests)
    if expire_at is not None and order.live:
        schedule(venue, order)
    if venue.armed or venue.reduce_only:
        run_triggers(venue, start)


def conditional_problem(
    venue: Venue, cmd: NewOrder, conditional: bool, is_market: bool
) -> str | None:
    """Why the conditional and scheduling fields of ``cmd`` do not go together (PROTOCOL
    §3.1), or None."""
    order_type = cmd.order_type
    if cmd.activate_at is not None and cmd.activate_at <= venue.ts:
        return "activate_at is not in the future"
    if conditional:
        if cmd.trigger_price is None:
            return f"a {order_type} order needs trigger_price"
        if is_market and cmd.price is not None:
            return f"a {order_type} order carries no price (it fires as a market order)"
        if not is_market and cmd.price is None:
            return f"a {order_type} order needs a price (the limit it fires at)"
        if cmd.activate_at is not None:
            return "activate_at cannot be combined with a conditional order type"
    elif cmd.trigger_price is not None:
        return (
            "trigger_price needs a conditional order_type "
            "(stop, stop_limit, take_profit, take_profit_limit)"
        )
    return None


def reject(
    venue: Venue, account: AccountState, cmd: NewOrder, reason: RejectReason, text: str
) -> None:
    """An order refused up front: one ``rejected`` report, no order id, nothing changes."""
    venue.seq += 1
    venue.events.append(
        rejected_report(account, cmd, reason=reason, text=text, ts=venue.ts, seq=venue.seq)
    )
