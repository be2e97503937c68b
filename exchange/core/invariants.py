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
  have ``expire_at``);
- every live order is in a book or waiting (armed in its symbol's trigger book with its
  trigger, or scheduled in the activation heap), never both; the trigger books and the
  activation heap hold exactly the waiting orders; the firing queue is empty between commands;
- every live reduce-only order has ``leaves`` at most the position it reduces.
"""

from __future__ import annotations

from exchange.core.book import ARMED, OPEN, SCHEDULED, Order
from exchange.core.clock import deadline_orders
from exchange.core.risk import reducible
from exchange.core.trigger_book import rises
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
                total = sum(o.shown if o.display else o.leaves for o in orders)
                if len({o.order_id for o in orders}) != len(orders):
                    problems.append(f"{symbol} @{price}: an order is queued twice")
                for o in orders:
                    if o.display and not 0 < o.shown <= min(o.display, o.leaves):
                        problems.append(f"iceberg {o.order_id}: shows {o.shown} of {o.leaves}")
                if level.qty != total or total <= 0:
                    problems.append(
                        f"{symbol} @{price}: level qty {level.qty}, orders hold {total}"
                    )
                for order in orders:
                    if order.price != price or order.is_buy != is_buy or order.leaves <= 0:
                        problems.append(f"{symbol} @{price}: misplaced order {order.order_id}")
                    live[order.order_id] = order
        if (
            book.state == OPEN
            and book.best_bid
            and book.best_ask
            and book.best_bid >= book.best_ask
        ):
            problems.append(f"{symbol}: crossed book {book.best_bid} >= {book.best_ask}")
    indexed = 0
    waiting: dict[int, Order] = {}
    money = venue.fee_pool
    deposits = 0
    for account in venue.accounts.values():
        deposits += account.deposits
        money += account.cash
        exposure: dict[tuple[str, bool], tuple[int, int]] = {}
        for order_id, order in account.orders.items():
            if order.pending:
                waiting[order_id] = order
                if order.live:
                    problems.append(f"order {order_id} is both waiting and in a book")
            else:
                indexed += 1
                if live.get(order_id) is not order:
                    problems.append(
                        f"{account.name}: order {order_id} is indexed but not in a book"
                    )
            if order.reduce_only:
                if account.name not in venue.reduce_only:
                    problems.append(f"reduce-only order {order_id}: account not watched")
                holding = account.holdings[order.book.symbol]
                if order.leaves > reducible(holding, order.is_buy):
                    problems.append(f"reduce-only order {order_id} exceeds its position")
            price = order.reserve if order.pending else order.price
            key = (order.book.symbol, order.is_buy)
            qty, value = exposure.get(key, (0, 0))
            exposure[key] = (qty + order.leaves, value + order.leaves * price)
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
    problems.extend(_waiting_problems(venue, waiting))
    scheduled = deadline_orders(venue)
    for order_id, order in (live | waiting).items():
        if (order.tif == "gtd") != (order.expire_at is not None):
            problems.append(f"order {order_id}: tif {order.tif} with expire_at {order.expire_at}")
        if order.expire_at is not None and order_id not in scheduled:
            problems.append(f"GTD order {order_id} has no deadline in the heap")
    return problems


def _waiting_problems(venue: Venue, waiting: dict[int, Order]) -> list[str]:
    """The trigger books and the activation heap against the waiting orders."""
    problems: list[str] = []
    if venue.firing:
        problems.append(f"{len(venue.firing)} orders left in the firing queue")
    armed = {i: o for i, o in waiting.items() if o.pending == ARMED}
    timed = {i: o for i, o in waiting.items() if o.pending == SCHEDULED}
    if len(armed) + len(timed) != len(waiting):
        problems.append("a waiting order is neither armed nor scheduled")
    if venue.armed != len(armed):
        problems.append(f"armed count {venue.armed}, {len(armed)} orders armed")
    in_books = 0
    for symbol, triggers in venue.triggers.items():
        keys = triggers.keys()
        in_books += len(keys)
        if len(keys) != len(triggers.orders):
            problems.append(f"{symbol}: trigger book keys and orders disagree")
        for up, trigger, order_id in keys:
            order = armed.get(order_id)
            if order is None or order.book.symbol != symbol:
                problems.append(f"{symbol}: trigger book holds order {order_id}, not armed here")
            elif order.trigger != trigger or rises(order) != up:
                problems.append(f"order {order_id}: trigger book entry disagrees with the order")
    if in_books != len(armed):
        problems.append(f"{len(armed)} armed orders, {in_books} in the trigger books")
    heap_ids = sorted(order_id for _, order_id, _ in venue.activations)
    if heap_ids != sorted(timed):
        problems.append(f"activation heap {heap_ids} != scheduled orders {sorted(timed)}")
    for at, _, order in venue.activations:
        if order.activate_at != at:
            problems.append(f"order {order.order_id}: activation entry at {at}")
    return problems
