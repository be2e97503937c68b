"""Liquidation: an account whose equity falls below its maintenance margin is marked
liquidating, its open orders are cancelled and its positions closed by IOC market orders within
the price band; a loss beyond its cash goes to the insurance fund, so cash is conserved.

Each function changes the ``Venue`` and appends the events it causes, with the next ``seq``.
"""

from __future__ import annotations

from exchange.core.accounts import AccountState
from exchange.core.book import OPEN, Order, OrderBook
from exchange.core.matching import match
from exchange.core.orders import cancel_resting, expire, remember_done, report
from exchange.core.venue import Venue
from exchange.protocol.messages import Liquidation


def check_accounts(venue: Venue, suspects: dict[str, AccountState]) -> list[AccountState]:
    """Exact margin check of ``suspects``; arms the safe ones, returns those to liquidate
    (in account creation order, so the outcome never depends on the watch's state)."""
    doomed = []
    for account in suspects.values():
        if account is venue.insurance or account.name in venue.liquidating:
            continue
        cushion = account.cushion()
        if cushion < 0:
            doomed.append(account)
        else:
            venue.watch.arm(account, cushion)
    if len(doomed) > 1:
        order = venue.account_order
        doomed.sort(key=lambda a: order[a.name])
    return doomed


def liquidate(venue: Venue, account: AccountState) -> None:
    """Cancel the account's orders and close its positions against the book."""
    account.liquidating = True
    account.liquidations += 1
    venue.watch.disarm(account)
    venue.liquidating[account.name] = account
    venue.touched_accounts[account.name] = account
    for order in list(account.orders.values()):
        cancel_resting(venue, order, None, None, "liquidation")
    close_positions(venue, account)


def close_positions(venue: Venue, account: AccountState) -> None:
    """Close what ``account`` holds with IOC market orders flagged ``liquidation``, limited
    like any market order to the price band around the last trade: a liquidation takes
    what the book offers within the band, never sweeps it away. What is left waits (the
    account stays liquidating) until liquidity appears within the band."""
    for holding in list(account.holdings.values()):
        if not holding.qty:
            continue
        book = holding.book
        if book.state != OPEN:  # halted or in auction: the close waits for the reopen
            continue
        is_buy = holding.qty < 0
        limit = liquidation_limit(book, is_buy)
        if limit is None:
            continue
        size = -holding.qty if is_buy else holding.qty
        order_id = venue.next_order_id
        venue.next_order_id = order_id + 1
        order = Order(
            order_id=order_id,
            account=account,
            book=book,
            is_buy=is_buy,
            price=0,
            qty=size,
            leaves=size,
            order_type="market",
            tif="ioc",
            liquidation=True,
        )
        report(venue, order, "new", "new")
        match(venue, order, limit)
        if order.cum_qty:
            venue.seq += 1
            venue.events.append(
                Liquidation(
                    account=account.name,
                    symbol=book.symbol,
                    side="buy" if is_buy else "sell",
                    qty=order.cum_qty,
                    price=book.instrument.avg_price(order.cum_cost, order.cum_qty),
                    ts=venue.ts,
                    seq=venue.seq,
                )
            )
        if order.leaves:
            expire(
                venue, order, "no_liquidity", "liquidation found no more liquidity within the band"
            )
        else:
            remember_done(venue, order, "filled")
    if not account.has_position():
        settle(venue, account)


def settle(venue: Venue, account: AccountState) -> None:
    """A liquidated account is flat: the insurance fund absorbs any negative cash."""
    insurance = venue.insurance
    if account.cash < 0:
        insurance.cash += account.cash
        venue.touched_accounts[insurance.name] = insurance
        account.cash = 0
    account.liquidating = False
    del venue.liquidating[account.name]
    venue.touched_accounts[account.name] = account


def retry_liquidations(venue: Venue, waiting: list[AccountState]) -> None:
    """Try again to close what ``waiting`` (accounts that were liquidating before this
    command) still hold, where there is liquidity within the band. One attempt per
    account and command: a liquidation moves the band with its own trades, so it can walk
    the price at most one band per command, never down a whole thin book at once."""
    for account in waiting:
        if not account.liquidating:
            continue
        for holding in account.holdings.values():
            if holding.qty and liquidation_limit(holding.book, holding.qty < 0) is not None:
                close_positions(venue, account)
                break


def liquidation_limit(book: OrderBook, is_buy: bool) -> int | None:
    """The limit (ticks) of a liquidation order on ``book``: the edge of the price band
    around the last trade; None when the best opposite price lies beyond it (or there is
    none), so there is nothing a liquidation may take now."""
    low, high = book.instrument.band_limits(book.band_reference())
    if is_buy:
        best = book.best_ask
        return high if best and best <= high else None
    best = book.best_bid
    return low if best and best >= low else None
