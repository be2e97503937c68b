"""Pre-trade risk: every rule an order or an amend must pass before it may rest or trade,
written once. Each check returns ``(reason, text)`` for the reject, or None to go on.

The rules, in the order they are checked: quantity at most ``max_order_qty``; limit price
within the price band around the last trade (else the reference price); a client order id not
already live; room for one more open order; the worst-case position within ``max_position``;
initial margin (positions and open orders at their worst) within equity, unless the order
lowers it; a post-only order may not cross.
"""

from __future__ import annotations

from exchange.core.accounts import AccountState, Holding
from exchange.core.book import OPEN, Order, OrderBook
from exchange.core.instruments import RATE_SCALE
from exchange.protocol.messages import NewOrder, RejectReason

Refusal = tuple[RejectReason, str]

NO_LIMIT = 1 << 62
"""The band's upper edge when an instrument has no band (``Instrument.band_limits``)."""


def band(book: OrderBook) -> tuple[int, int]:
    """Lowest and highest limit price (ticks) the book accepts now."""
    return book.instrument.band_limits(book.band_reference())


def would_cross(book: OrderBook, is_buy: bool, price: int) -> bool:
    """Whether a limit order at ``price`` would trade at once against the book (never while
    the book is halted or in auction: nothing trades then)."""
    if book.state != OPEN:
        return False
    if is_buy:
        return bool(book.best_ask and price >= book.best_ask)
    return bool(book.best_bid and price <= book.best_bid)


def worst_position(holding: Holding, is_buy: bool, added: int) -> int:
    """The largest position (lots, on the order's side) if ``added`` more lots on that side
    and every open order on it filled."""
    if is_buy:
        return holding.qty + holding.open_buy_qty + added
    return -(holding.qty - holding.open_sell_qty - added)


def margin_allows(account: AccountState, holding: Holding, is_buy: bool, value: int) -> bool:
    """True if adding an order worth ``value`` (ticks x lots) keeps initial margin <= equity,
    or does not raise initial margin at all (reducing orders are always allowed)."""
    book = holding.book
    position_value = holding.qty * book.mark
    long_side = position_value + holding.open_buy_value
    short_side = position_value - holding.open_sell_value
    if long_side < 0:
        long_side = -long_side
    if short_side < 0:
        short_side = -short_side
    before = long_side if long_side > short_side else short_side
    if is_buy:
        long_side = position_value + holding.open_buy_value + value
        if long_side < 0:
            long_side = -long_side
    else:
        short_side = position_value - holding.open_sell_value - value
        if short_side < 0:
            short_side = -short_side
    after = long_side if long_side > short_side else short_side
    if after <= before:
        return True
    instrument = book.instrument
    total = (after - before) * instrument.tick_value * instrument.im_rate
    equity = float(account.cash * RATE_SCALE)
    for other in account.holdings.values():
        other_book = other.book
        other_instrument = other_book.instrument
        mark = other_book.mark
        qty = other.qty
        position_value = qty * mark
        worst = max(
            abs(position_value + other.open_buy_value),
            abs(position_value - other.open_sell_value),
        )
        tick_value = other_instrument.tick_value
        total += worst * tick_value * other_instrument.im_rate
        if qty:
            equity += (position_value * tick_value - other.cost) * RATE_SCALE
    return total <= equity


def check_new(
    account: AccountState,
    book: OrderBook,
    cmd: NewOrder,
    qty: int,
    price: int,
    limits: tuple[int, int],
    rests: bool,
    reserve: int = 0,
) -> Refusal | None:
    """The risk checks of a new order of ``qty`` lots (``cmd.qty``, or less when reduce-only
    cut it) whose quantity and price (``price`` ticks, 0 for a market order) are valid;
    ``limits`` is the book's ``band``; ``rests``: a GTC limit order, or any order that waits
    (conditional, scheduled). ``reserve`` (ticks, 0: none) marks an order that waits: its
    exposure is valued at ``reserve`` and the post-only test waits for it to fire.

    Once past the order-level checks it gives the account its (empty) holding in ``book`` if it
    has none yet, the one change it makes (snapshots list that holding).
    """
    instrument = book.instrument
    is_market = not price
    low, high = limits
    if qty > instrument.max_order_qty:
        return "max_order_qty", f"qty above max_order_qty {instrument.max_order_qty}"
    if not is_market and (price < low or price > high):
        to_price = instrument.to_price
        return "price_band", f"price outside the band [{to_price(low)}, {to_price(high)}]"
    cid = cmd.client_order_id
    if cid is not None and cid in account.by_client_id:
        return "duplicate_client_order_id", f"live order has id {cid!r}"
    if rests and len(account.orders) >= account.max_open_orders:
        return "max_open_orders", f"at most {account.max_open_orders} open orders"
    is_buy = cmd.side == "buy"
    holding = account.holding(book)
    if worst_position(holding, is_buy, qty) > instrument.max_position:
        return "max_position", f"position could exceed {instrument.max_position}"
    if reserve:
        value = qty * reserve
    elif is_market:
        if high == NO_LIMIT:  # no band: assume the market order could pay twice the mark
            value = int(qty * book.mark * 2)
        else:
            value = qty * (high if is_buy else low)
    else:
        value = qty * price
    if not margin_allows(account, holding, is_buy, value):
        return "insufficient_margin", "initial margin would exceed equity"
    if cmd.post_only and not reserve and would_cross(book, is_buy, price):
        return "post_only_would_cross", "post-only order would cross"
    return None


def reducible(holding: Holding, is_buy: bool) -> int:
    """How many lots a reduce-only order on this side may trade: the position on the other
    side (a buy reduces a short, a sell a long), 0 when there is none."""
    qty = holding.qty
    if is_buy:
        return -qty if qty < 0 else 0
    return qty if qty > 0 else 0


def reserve_price(book: OrderBook, is_buy: bool, price: int, trigger: int) -> int:
    """Ticks a waiting order's exposure is valued at: its limit ``price``; for a market-type
    one (``price`` 0) the band edge it could trade at if it fired now with the last trade at
    its ``trigger`` (else the band reference): the band's top for a buy, its bottom for a
    sell, and twice that reference when the instrument has no band (as ``check_new`` values
    a market order)."""
    if price:
        return price
    reference = trigger or book.band_reference()
    low, high = book.instrument.band_limits(reference)
    if high == NO_LIMIT:
        return 2 * reference
    return high if is_buy else low


def check_fire(order: Order, limits: tuple[int, int]) -> Refusal | None:
    """The pre-trade checks again when a waiting order fires (or activates): its exposure is
    already released; ``limits`` is the book's ``band`` now. The same rules as ``check_new``
    except the client order id and the open-order count (the order already counted)."""
    book = order.book
    instrument = book.instrument
    qty = order.leaves
    price = order.price
    low, high = limits
    if qty > instrument.max_order_qty:
        return "max_order_qty", f"qty above max_order_qty {instrument.max_order_qty}"
    if price and (price < low or price > high):
        to_price = instrument.to_price
        return "price_band", f"price outside the band [{to_price(low)}, {to_price(high)}]"
    is_buy = order.is_buy
    account = order.account
    holding = account.holding(book)
    if not order.reduce_only and worst_position(holding, is_buy, qty) > instrument.max_position:
        return "max_position", f"position could exceed {instrument.max_position}"
    if not price:
        if high == NO_LIMIT:
            value = int(qty * book.mark * 2)
        else:
            value = qty * (high if is_buy else low)
    else:
        value = qty * price
    if not margin_allows(account, holding, is_buy, value):
        return "insufficient_margin", "initial margin would exceed equity"
    if order.post_only and would_cross(book, is_buy, price):
        return "post_only_would_cross", "post-only order would cross"
    return None


def check_amend(order: Order, new_qty: int, new_price: int) -> Refusal | None:
    """The checks of an amend to ``new_qty`` at ``new_price`` (valid numbers) that come before
    the amend is known to leave anything to trade: ``max_order_qty`` and the band."""
    book = order.book
    if new_qty > book.instrument.max_order_qty:
        return "max_order_qty", "qty above max_order_qty"
    if new_price != order.price:
        low, high = band(book)
        if new_price < low or new_price > high:
            return "price_band", "price outside the band"
    return None


def check_amend_exposure(
    account: AccountState, order: Order, new_leaves: int, new_price: int
) -> Refusal | None:
    """The checks of an amend that leaves ``new_leaves`` > 0 lots to trade at ``new_price``:
    position limit and margin for what it adds, and post-only."""
    book = order.book
    holding = account.holdings[book.symbol]
    is_buy = order.is_buy
    added = new_leaves - order.leaves
    if added > 0 and worst_position(holding, is_buy, added) > book.instrument.max_position:
        return "max_position", "position limit"
    value_delta = new_leaves * new_price - order.leaves * order.price
    if value_delta > 0 and not margin_allows(account, holding, is_buy, value_delta):
        return "insufficient_margin", "initial margin would exceed equity"
    if order.post_only and would_cross(book, is_buy, new_price):
        return "post_only_would_cross", "post-only order would cross"
    return None
