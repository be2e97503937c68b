"""Matching: an accepted order trades against the opposite side in price-time priority, at the
resting orders' prices, never through its limit; fill-or-kill checks the whole quantity first;
self-trade prevention follows the taker's ``stp``. Fees, positions and cash move with every
fill (``exchange.core.accounts.apply_fill``).

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from exchange.core.accounts import Holding, apply_fill
from exchange.core.book import OPEN, Order
from exchange.core.instruments import RATE_SCALE
from exchange.core.orders import cancel_resting, expire, remember_done, rest, shrink, unlist
from exchange.core.reports import fill_event, trade_report
from exchange.core.risk import reducible
from exchange.core.venue import Venue
from exchange.protocol.messages import Side


def fee(notional: int, rate: int) -> int:
    """Fee in money units, truncated toward zero (the venue keeps sub-unit dust)."""
    if rate >= 0:
        return notional * rate // RATE_SCALE
    return -(notional * -rate // RATE_SCALE)


def execute(venue: Venue, order: Order, limit: int, rests: bool) -> None:
    """Match an accepted (or re-priced) order up to ``limit`` ticks, then rest what is left
    (``rests``) or expire it."""
    book = order.book
    if book.state != OPEN:  # halted or in auction: nothing trades (exchange.core.status)
        if rests:
            rest(venue, order)
        else:
            text = f"{book.symbol} is {book.state}: only gtc/gtd limit orders can rest"
            expire(venue, order, "market_halted", text)
        return
    if order.tif == "fok" and not fok_fillable(order, limit):
        expire(venue, order, "fok_unfilled", "not enough liquidity to fill the whole order")
        return
    stop = None
    if order.is_buy:
        if book.best_ask and book.best_ask <= limit:
            stop = match(venue, order, limit)
    elif book.best_bid and book.best_bid >= limit:
        stop = match(venue, order, limit)
    if order.leaves == 0:
        unlist(order)
        remember_done(venue, order, "filled")
    elif stop is not None:
        unlist(order)
        expire(venue, order, "self_trade", "self-trade prevented")
    elif rests:
        rest(venue, order)
    elif not order.price:  # market, or a fired stop / take_profit
        expire(venue, order, "no_liquidity", "no more liquidity within the price band")
    else:
        expire(venue, order, None, None)


def fok_fillable(order: Order, limit: int) -> bool:
    """Whether ``order`` could fill completely now, honouring its self-trade mode."""
    book = order.book
    if order.is_buy:
        prices = sorted(p for p in book.asks if p <= limit)
    else:
        prices = sorted((p for p in book.bids if p >= limit), reverse=True)
    needed = order.leaves
    skip_own = order.stp == "expire_maker"
    symbol = book.symbol
    taken: dict[str, int] = {}  # lots taken so far from each maker account
    for maker in book.iter_orders(not order.is_buy, prices):
        if maker.account is order.account:
            if skip_own:
                continue
            return False
        take = maker.leaves
        name = maker.account.name
        before = taken.get(name, 0)
        if maker.reduce_only:  # match() cuts it to what its position still allows
            room = reducible(maker.account.holdings[symbol], maker.is_buy) - before
            if room < take:
                take = room if room > 0 else 0
        taken[name] = before + take
        needed -= take
        if needed <= 0:
            return True
    return False


def match(venue: Venue, taker: Order, limit: int) -> str | None:
    """Trade ``taker`` against the opposite side up to ``limit``; returns "self_trade" if
    self-trade prevention stopped it, else None. Trades print at the resting price."""
    book = taker.book
    symbol = book.symbol
    instrument = book.instrument
    tick_value = instrument.tick_value
    maker_rate = instrument.maker_fee
    taker_rate = instrument.taker_fee
    to_price = instrument.to_price
    is_buy = taker.is_buy
    levels = book.asks if is_buy else book.bids
    changed = book.changed_asks if is_buy else book.changed_bids
    taker_account = taker.account
    taker_holding = taker_account.holdings.get(symbol)
    if taker_holding is None:
        taker_holding = taker_account.holdings[symbol] = Holding(book)
    events = venue.events
    ts = venue.ts
    touched = venue.touched_accounts
    touched[taker_account.name] = taker_account
    venue.touched_books[symbol] = book
    aggressor: Side = "buy" if is_buy else "sell"
    liquidation = taker.liquidation
    while taker.leaves:
        best = book.best_ask if is_buy else book.best_bid
        if not best or (best > limit if is_buy else best < limit):
            return None
        level = levels[best]
        changed.add(best)
        while True:
            orders = level.orders
            maker = orders[0]
            if not maker.live:
                orders.popleft()
                level.dead -= 1
                continue
            maker_account = maker.account
            if maker_account is taker_account:
                stp = taker.stp
                if stp == "expire_taker":
                    return "self_trade"
                cancel_resting(venue, maker, None, "self_trade", "self-trade prevented")
                if stp == "expire_both":
                    return "self_trade"
                if best not in levels:
                    break
                continue
            if maker.reduce_only:
                # Fills elsewhere may have shrunk the position it reduces: cut it first.
                allowed = reducible(maker_account.holdings[symbol], maker.is_buy)
                if allowed < maker.leaves:
                    shrink(venue, maker, allowed)
                    if not maker.live:
                        if best not in levels:
                            break
                        continue
            shown = maker.shown if maker.display else maker.leaves  # an iceberg: its slice
            qty = taker.leaves if taker.leaves < shown else shown
            notional = best * qty * tick_value
            maker_fee = fee(notional, maker_rate)
            taker_fee = fee(notional, taker_rate)
            maker.leaves -= qty
            if maker.display:
                maker.shown -= qty
            maker.cum_qty += qty
            maker.cum_cost += best * qty
            taker.leaves -= qty
            taker.cum_qty += qty
            taker.cum_cost += best * qty
            level.qty -= qty
            maker_holding = maker_account.holdings[symbol]
            if maker.is_buy:  # Holding.expose(maker.is_buy, -qty, best), inline: the fill loop
                maker_holding.open_buy_qty -= qty
                maker_holding.open_buy_value -= qty * best
            else:
                maker_holding.open_sell_qty -= qty
                maker_holding.open_sell_value -= qty * best
            apply_fill(maker_account, maker_holding, not is_buy, qty, best)
            apply_fill(taker_account, taker_holding, is_buy, qty, best)
            maker_account.cash -= maker_fee
            maker_account.fees += maker_fee
            taker_account.cash -= taker_fee
            taker_account.fees += taker_fee
            venue.fee_pool += maker_fee + taker_fee
            book.last_trade = best
            touched[maker_account.name] = maker_account
            trade_id = venue.next_trade_id
            venue.next_trade_id = trade_id + 1
            px = to_price(best)
            seq = venue.seq
            if is_buy:
                buyer, seller, buyer_fee, seller_fee = taker, maker, taker_fee, maker_fee
            else:
                buyer, seller, buyer_fee, seller_fee = maker, taker, maker_fee, taker_fee
            events.append(
                fill_event(
                    book=book,
                    trade_id=trade_id,
                    price=px,
                    qty=qty,
                    aggressor=aggressor,
                    buyer=buyer,
                    seller=seller,
                    buyer_fee=buyer_fee,
                    seller_fee=seller_fee,
                    liquidation=liquidation,
                    ts=ts,
                    seq=seq + 1,
                )
            )
            events.append(
                trade_report(
                    taker,
                    trade_id=trade_id,
                    price=px,
                    qty=qty,
                    liquidity="taker",
                    fee=taker_fee,
                    ts=ts,
                    seq=seq + 2,
                )
            )
            events.append(
                trade_report(
                    maker,
                    trade_id=trade_id,
                    price=px,
                    qty=qty,
                    liquidity="maker",
                    fee=maker_fee,
                    ts=ts,
                    seq=seq + 3,
                )
            )
            venue.seq = seq + 3
            if maker.leaves == 0:
                orders.popleft()
                maker.live = False
                unlist(maker)
                remember_done(venue, maker, "filled")
            elif maker.display and not maker.shown:  # the next slice, at the back
                orders.popleft()
                maker.shown = maker.display if maker.display < maker.leaves else maker.leaves
                orders.append(maker)
                level.qty += maker.shown
            if level.qty == 0:
                book.drop_level(not is_buy, best)
                break
            if not taker.leaves:
                return None
    return None
