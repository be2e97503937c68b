"""Trading status (PROTOCOL §3.2): ``open`` / ``halted`` / ``auction`` per instrument, the call
auction and its uncross, and circuit breakers.

- ``halted``: new orders are refused ``market_halted``; cancels and amends work; nothing
  trades (amends and activations rest without matching; waiting stops wait; liquidations
  wait). A halt with ``until`` reopens by itself then, through an auction of the halt's
  ``auction_s`` (0: at once).
- ``auction``: limit orders (gtc/gtd) rest without matching, so the book may cross; market,
  IOC and FOK orders are refused ``market_halted``. After every change to the auction book an
  ``auction`` event gives the indicative uncross (at most one per ``AUCTION_INFO_NS`` per
  symbol: a later change waits for the engine's clock). It ends at its ``until`` or at a
  ``set_status`` ``open``.
- Opening (from either) uncrosses a crossed book at one price: the most quantity executable;
  then the least imbalance; then the nearest to the last trade (the reference price before
  any); then the lower. Bids and asks trade in price-time priority, both sides as makers
  (maker fee), ``aggressor`` ``auction``; self-trades are not prevented in an uncross (both
  orders rested, neither took). Then ``market_status`` ``open``, then the stops the uncross
  price meets fire.
- A circuit breaker (instrument config) halts the instrument when a trade is more than
  ``move`` away from the lowest or highest trade of the last ``window_s`` (that trade
  included), after the command that printed it; the halt lasts ``halt_s``, then an auction of
  ``auction_s``; all three carry reason ``circuit_breaker``, and the window starts afresh at
  the reopen.

Time reaches the stage as the ``AdvanceTime`` command (``advance``); ``next_deadline`` says
when the engine should send it. Each function changes the ``Venue`` and appends the events it
causes, with the next ``seq``.
"""

from __future__ import annotations

from collections import deque

import msgspec

from exchange.core.accounts import apply_fill
from exchange.core.book import AUCTION, HALTED, OPEN, Order, OrderBook
from exchange.core.instruments import RATE_SCALE
from exchange.core.market_control import NS, Control
from exchange.core.matching import fee
from exchange.core.orders import remember_done, unlist
from exchange.core.reports import fill_event, invalid, trade_report
from exchange.core.triggers import run as run_triggers
from exchange.core.venue import Venue
from exchange.protocol.messages import (
    AuctionInfo,
    Fill,
    MarketState,
    MarketStatus,
    NewOrder,
    SetStatus,
    StatusReason,
)

# ------------------------------------------------------------------------------ commands


def set_status(venue: Venue, cmd: SetStatus, reason: StatusReason = "admin") -> None:
    """An operator's ``set_status`` for one symbol or ``*``: one ``market_status`` per symbol
    (echoing ``req_id``). ``until`` not in the future, or on ``open``, is an error and
    changes nothing; so is an unknown symbol."""
    if cmd.symbol == "*":
        books = list(venue.books.values())
    elif cmd.symbol in venue.books:
        books = [venue.books[cmd.symbol]]
    else:
        venue.events.append(invalid(cmd, f"unknown symbol {cmd.symbol!r}"))
        return
    if cmd.until is not None and (cmd.status == OPEN or cmd.until <= venue.ts):
        text = "until must be in the future" if cmd.status != OPEN else "open takes no until"
        venue.events.append(invalid(cmd, text))
        return
    auction_ns = round((cmd.auction_s or 0.0) * NS)
    for book in books:
        if cmd.status == HALTED:
            halt(venue, book, reason, cmd.until, auction_ns, cmd.req_id)
        elif cmd.status == AUCTION:
            until = venue.ts + auction_ns if auction_ns else None
            start_auction(venue, book, reason, until, cmd.req_id)
        else:
            reopen(venue, book, reason, cmd.req_id)


def halt(
    venue: Venue,
    book: OrderBook,
    reason: StatusReason,
    until: int | None,
    reopen_auction_ns: int,
    req_id: str | int | None = None,
) -> None:
    control = venue.controls[book.symbol]
    control.reason = reason
    control.until = until
    control.reopen_auction_ns = reopen_auction_ns
    control.info_due = None
    _change(venue, book, HALTED, req_id)


def start_auction(
    venue: Venue,
    book: OrderBook,
    reason: StatusReason,
    until: int | None,
    req_id: str | int | None = None,
) -> None:
    control = venue.controls[book.symbol]
    control.reason = reason
    control.until = until
    control.reopen_auction_ns = 0
    _change(venue, book, AUCTION, req_id)
    auction_info(venue, book)


def reopen(
    venue: Venue, book: OrderBook, reason: StatusReason, req_id: str | int | None = None
) -> None:
    """Uncross the book if it is crossed, then ``open`` (and the stops the uncross price
    meets fire, after the ``market_status``)."""
    control = venue.controls[book.symbol]
    start = len(venue.events)
    traded = uncross(venue, book) if book.state != OPEN else False
    control.reason = reason
    control.until = None
    control.reopen_auction_ns = 0
    control.info_due = None
    control.lows.clear()
    control.highs.clear()
    _change(venue, book, OPEN, req_id)
    if traded and (venue.armed or venue.reduce_only):
        run_triggers(venue, start)


def _change(venue: Venue, book: OrderBook, state: MarketState, req_id: str | int | None) -> None:
    control = venue.controls[book.symbol]
    book.state = state
    instrument = book.instrument
    instrument.info = msgspec.structs.replace(instrument.info, status=state)
    venue.seq += 1
    venue.events.append(
        MarketStatus(
            symbol=book.symbol,
            status=state,
            reason=control.reason,
            until=control.until,
            ts=venue.ts,
            seq=venue.seq,
            req_id=req_id,
        )
    )


def status_refusal(book: OrderBook, cmd: NewOrder) -> str | None:
    """Why a new order is refused ``market_halted`` by ``book``'s status, or None: a halted
    book takes no new order; an auction takes limit orders that rest (gtc/gtd) and
    conditional or scheduled ones (they wait), not market, IOC or FOK orders."""
    if book.state == HALTED:
        return f"{book.symbol} is halted: new orders are refused until it reopens"
    if book.state == AUCTION and (
        cmd.order_type == "market"
        or (cmd.order_type == "limit" and cmd.activate_at is None and cmd.tif in ("ioc", "fok"))
    ):
        return f"{book.symbol} is in auction: only gtc/gtd limit orders are accepted"
    return None


# ------------------------------------------------------------------------------ time


def next_deadline(venue: Venue) -> int | None:
    """The earliest status deadline (a halt's or auction's end, a postponed ``auction``
    event), None when there is none."""
    earliest: int | None = None
    for control in venue.controls.values():
        for when in (control.until, control.info_due):
            if when is not None and (earliest is None or when < earliest):
                earliest = when
    return earliest


def advance(venue: Venue, ts: int) -> None:
    """Time has reached ``ts``: end the halts and auctions due (in symbol order), send the
    postponed ``auction`` events due."""
    for symbol, control in venue.controls.items():
        book = venue.books[symbol]
        if control.until is not None and control.until <= ts:
            follow = "schedule" if control.reason == "admin" else control.reason
            if book.state == HALTED and control.reopen_auction_ns:
                start_auction(venue, book, follow, ts + control.reopen_auction_ns)
            else:
                reopen(venue, book, follow)
        if control.info_due is not None and control.info_due <= ts and book.state == AUCTION:
            auction_info(venue, book)


# ------------------------------------------------------------------------------ auction


AUCTION_INFO_NS = 100_000_000
"""At most one ``auction`` event per symbol per this many ns (10 per second)."""


def touched(venue: Venue, book: OrderBook) -> None:
    """The auction book of ``book`` changed: an ``auction`` event now, or when the pacing
    allows (``info_due``)."""
    control = venue.controls[book.symbol]
    if venue.ts - control.info_sent >= AUCTION_INFO_NS:
        auction_info(venue, book)
    elif control.info_due is None:
        control.info_due = control.info_sent + AUCTION_INFO_NS


def auction_info(venue: Venue, book: OrderBook) -> None:
    control = venue.controls[book.symbol]
    price, qty, imbalance = indicative(book)
    control.info_sent = venue.ts
    control.info_due = None
    venue.seq += 1
    venue.events.append(
        AuctionInfo(
            symbol=book.symbol,
            indicative_price=book.instrument.to_price(price) if qty else None,
            indicative_qty=qty,
            imbalance=imbalance,
            ends_at=control.until,
            ts=venue.ts,
            seq=venue.seq,
        )
    )


def indicative(book: OrderBook) -> tuple[int, int, int]:
    """``(price ticks, qty, imbalance)`` of the uncross if it happened now; ``(0, 0, 0)``
    when nothing crosses. The rule is the module doc's; icebergs count whole (hidden part
    included: the uncross is one price, so it must clear the book)."""
    if not book.best_bid or not book.best_ask or book.best_bid < book.best_ask:
        return 0, 0, 0
    low, high = book.best_ask, book.best_bid
    bids = sorted((p for p in book.bids if p >= low), reverse=True)
    asks = sorted(p for p in book.asks if p <= high)
    candidates = sorted(set(bids) | set(asks))
    # buy(P): bids at >= P; sell(P): asks at <= P, for every candidate P (ascending).
    buy_at: dict[int, int] = {}
    total = 0
    index = 0
    for price in reversed(candidates):
        while index < len(bids) and bids[index] >= price:
            total += _level_total(book.bids[bids[index]].orders)
            index += 1
        buy_at[price] = total
    reference = book.last_trade or book.instrument.reference_ticks
    best = (0, 0, 0)
    best_key: tuple[int, int, int, int] | None = None
    total = 0
    index = 0
    for price in candidates:
        while index < len(asks) and asks[index] <= price:
            total += _level_total(book.asks[asks[index]].orders)
            index += 1
        buy = buy_at[price]
        executable = buy if buy < total else total
        if not executable:
            continue
        imbalance = buy - total
        key = (-executable, abs(imbalance), abs(price - reference), price)
        if best_key is None or key < best_key:
            best_key = key
            best = (price, executable, imbalance)
    return best


def uncross(venue: Venue, book: OrderBook) -> bool:
    """Trade the crossed part of ``book`` at the indicative price; returns whether anything
    traded."""
    price, qty, _ = indicative(book)
    if not qty:
        return False
    instrument = book.instrument
    tick_value = instrument.tick_value
    fee_rate = instrument.maker_fee
    display = instrument.to_price(price)
    buyers = _queue(book, True, price)
    sellers = _queue(book, False, price)
    ts = venue.ts
    icebergs: list[Order] = []
    while qty and buyers and sellers:
        buyer, bought = buyers[0]
        seller, sold = sellers[0]
        size = min(qty, bought, sold)
        qty -= size
        notional = price * size * tick_value
        buyer_fee = fee(notional, fee_rate)
        seller_fee = fee(notional, fee_rate)
        for order, paid in ((buyer, buyer_fee), (seller, seller_fee)):
            _take(book, order, size, price)
            if order.display:
                icebergs.append(order)
            account = order.account
            holding = account.holdings[book.symbol]
            apply_fill(account, holding, order.is_buy, size, price)
            account.cash -= paid
            account.fees += paid
            venue.touched_accounts[account.name] = account
        venue.fee_pool += buyer_fee + seller_fee
        book.last_trade = price
        trade_id = venue.next_trade_id
        venue.next_trade_id = trade_id + 1
        seq = venue.seq
        venue.events.append(
            fill_event(
                book=book,
                trade_id=trade_id,
                price=display,
                qty=size,
                aggressor="auction",
                buyer=buyer,
                seller=seller,
                buyer_fee=buyer_fee,
                seller_fee=seller_fee,
                liquidation=False,
                ts=ts,
                seq=seq + 1,
            )
        )
        for offset, (order, paid) in enumerate(((buyer, buyer_fee), (seller, seller_fee))):
            venue.events.append(
                trade_report(
                    order,
                    trade_id=trade_id,
                    price=display,
                    qty=size,
                    liquidity="maker",
                    fee=paid,
                    ts=ts,
                    seq=seq + 2 + offset,
                )
            )
        venue.seq = seq + 3
        for queue, left in ((buyers, bought - size), (sellers, sold - size)):
            order, _ = queue[0]
            if left:
                queue[0] = (order, left)
                continue
            queue.popleft()
            if not order.leaves:
                unlist(order)
                remember_done(venue, order, "filled")
    for order in icebergs:  # what is left of an iceberg shows its next slice, at the back
        if order.live and order.display and not order.shown:
            _refill(book, order)
    for is_buy, levels in ((True, book.bids), (False, book.asks)):
        for level_price in [p for p, level in levels.items() if level.qty == 0]:
            book.drop_level(is_buy, level_price)
    venue.touched_books[book.symbol] = book
    return True


def _level_total(orders: deque[Order]) -> int:
    """Everything the live orders of a level hold, icebergs' hidden parts included."""
    return sum(order.leaves for order in orders if order.live)


def _queue(book: OrderBook, is_buy: bool, price: int) -> deque[tuple[Order, int]]:
    """``(order, lots)`` of one side that can trade at ``price``, in priority: by price, then
    within a price what is shown in queue order, then the icebergs' hidden parts in queue
    order."""
    side = book.bids if is_buy else book.asks
    prices = sorted((p for p in side if (p >= price if is_buy else p <= price)), reverse=is_buy)
    queue: deque[tuple[Order, int]] = deque()
    for level_price in prices:
        live = [o for o in side[level_price].orders if o.live]
        queue.extend((o, o.shown if o.display else o.leaves) for o in live)
        queue.extend((o, o.leaves - o.shown) for o in live if o.display and o.leaves > o.shown)
    return queue


def _take(book: OrderBook, order: Order, size: int, price: int) -> None:
    """``size`` lots of resting ``order`` trade at ``price``: its leaves (an iceberg's slice
    first), its level, its holding's open exposure (at its own limit price) and its fill
    totals. Empty levels are dropped by the caller once the uncross is done."""
    order.cum_qty += size
    order.cum_cost += price * size
    order.account.holdings[book.symbol].expose(order.is_buy, -size, order.price)
    level = (book.bids if order.is_buy else book.asks)[order.price]
    order.leaves -= size
    if order.display:
        from_slice = size if size < order.shown else order.shown
        order.shown -= from_slice
        level.qty -= from_slice
    else:
        level.qty -= size
    if order.is_buy:
        book.changed_bids.add(order.price)
    else:
        book.changed_asks.add(order.price)
    if not order.leaves:
        order.live = False
        level.dead += 1


def _refill(book: OrderBook, order: Order) -> None:
    """An iceberg whose slice is done shows its next one at the back of its price's queue."""
    level = (book.bids if order.is_buy else book.asks)[order.price]
    order.shown = min(order.display, order.leaves)
    level.orders.remove(order)  # out of its old place in the queue (it is still live)
    level.orders.append(order)
    level.qty += order.shown


# ------------------------------------------------------------------------------ breakers


def check_breakers(venue: Venue, fills: list[Fill]) -> None:
    """Feed the command's trades to their symbols' circuit breakers; halt the symbols whose
    breaker tripped (once the command is done)."""
    tripped: dict[str, OrderBook] = {}
    for fill in fills:
        control = venue.controls[fill.symbol]
        if not control.breaker_move:
            continue
        book = venue.books[fill.symbol]
        if book.state != OPEN or fill.symbol in tripped:
            continue
        ticks = book.instrument.to_ticks(fill.price)
        if ticks is None:  # pragma: no cover - fills are on the tick
            continue
        if _window_breaks(control, fill.ts, ticks):
            tripped[fill.symbol] = book
    for book in tripped.values():
        control = venue.controls[book.symbol]
        control.lows.clear()
        control.highs.clear()
        halt(
            venue,
            book,
            "circuit_breaker",
            venue.ts + control.breaker_halt_ns,
            control.breaker_auction_ns,
        )


def _window_breaks(control: Control, ts: int, ticks: int) -> bool:
    """Add a trade to the window; whether it is more than ``move`` from the window's lowest
    or highest trade."""
    lows, highs = control.lows, control.highs
    start = ts - control.breaker_window_ns
    while lows and lows[0][0] < start:
        lows.popleft()
    while highs and highs[0][0] < start:
        highs.popleft()
    while lows and lows[-1][1] >= ticks:
        lows.pop()
    lows.append((ts, ticks))
    while highs and highs[-1][1] <= ticks:
        highs.pop()
    highs.append((ts, ticks))
    low = lows[0][1]
    high = highs[0][1]
    move = control.breaker_move
    return (ticks - low) * RATE_SCALE > move * low or (high - ticks) * RATE_SCALE > move * high
