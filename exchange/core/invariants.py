"""The core's internal consistency, checked from the outside of its hot paths (like
exchange-core's ``validateInternalState``): the scenario and property tests run it after every
command. Never used by the engine itself; it walks every order, so it costs O(state).

``violations(venue)`` returns a sentence per broken invariant (empty when all hold):

- no book is crossed, and each side's best price is its best level;
- each level's quantity equals the sum of its live orders' remaining quantity;
- the live-order indexes (by id and by client order id) agree with the books;
- each holding's open-order exposure equals the sum over the account's live orders;
- money is conserved: the accounts' cash less their positions' cost bases, plus the fees
  the venue collected, equals the money deposited;
- every order has ``qty == cum_qty + leaves`` (and positive ``leaves`` while live);
- the deadlines heap holds a current entry for every live GTD order (and only GTD orders
  have ``expire_at``).
"""

from __future__ import annotations

from exchange.core.book import Order
from exchange.core.clock import deadline_orders
from exchange.core.venue import Venue


def violations(venue: Venue) -> list[str]:
    """Every broken invariant of ``venue``, as sentences naming what is wrong."""
    problems: list[str] = []
    live: dict[int, Order] = {}
    for book in venue.books.values():
        symbol = book.symbol
        for is_buy, levels in ((True, book.bids), (False, book.asks)):
            best = book.best_bid if is_buy else book.best_ask
            expected_best = (max(levels) if is_buy else min(levels)) if levels else 0
            if best != expected_best:
                problems.append(
                    f"{symbol}: best {'bid' if is_buy else 'ask'} {best}, "
                    f"levels say {expected_best}"
                )
            for price, level in levels.items():
                orders = [o for o in level.orders if o.live]
                total = sum(o.leaves for o in orders)
                if level.qty != total or total <= 0:
                    problems.append(
                        f"{symbol} @{price}: level qty {level.qty}, orders hold {total}"
                    )
                for order in orders:
                    if order.price != price or order.is_buy != is_buy or order.leaves <= 0:
                        problems.append(f"{symbol} @{price}: misplaced order {order.order_id}")
                    live[order.order_id] = order
        if book.best_bid and book.best_ask and book.best_bid >= book.best_ask:
            problems.append(f"{symbol}: crossed book {book.best_bid} >= {book.best_ask}")
    indexed = 0
    money = venue.fee_pool
    deposits = 0
    for account in venue.accounts.values():
        deposits += account.deposits
        money += account.cash
        exposure: dict[tuple[str, bool], tuple[int, int]] = {}
        for order_id, order in account.orders.items():
            indexed += 1
            if live.get(order_id) is not order:
                problems.append(f"{account.name}: order {order_id} is indexed but not in a book")
            key = (order.book.symbol, order.is_buy)
            qty, value = exposure.get(key, (0, 0))
            exposure[key] = (qty + order.leaves, value + order.leaves * order.price)
            if order.qty != order.cum_qty + order.leaves:
                problems.append(f"order {order_id}: qty {order.qty} != cum_qty + leaves")
        for cid, order in account.by_client_id.items():
            if account.orders.get(order.order_id) is not order or order.client_order_id != cid:
                problems.append(f"{account.name}: client order id {cid!r} indexes a wrong order")
        for symbol, holding in account.holdings.items():
            money -= holding.cost
            buys = exposure.get((symbol, True), (0, 0))
            sells = exposure.get((symbol, False), (0, 0))
            if (holding.open_buy_qty, holding.open_buy_value) != buys or (
                holding.open_sell_qty,
                holding.open_sell_value,
            ) != sells:
                problems.append(f"{account.name} {symbol}: open exposure disagrees with orders")
    if indexed != len(live):
        problems.append(f"{len(live)} live orders in books, {indexed} in account indexes")
    if money != deposits:
        problems.append(f"money not conserved: {money} held, {deposits} deposited")
    scheduled = deadline_orders(venue)
    for order_id, order in live.items():
        if (order.tif == "gtd") != (order.expire_at is not None):
            problems.append(f"order {order_id}: tif {order.tif} with expire_at {order.expire_at}")
        if order.expire_at is not None and order_id not in scheduled:
            problems.append(f"GTD order {order_id} has no deadline in the heap")
    return problems
