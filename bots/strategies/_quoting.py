"""Helpers shared by the quoting strategies: sizes, the book without our own orders, and
turning a wish list of quotes into the fewest intents (keep, amend, place, cancel)."""

from __future__ import annotations

from functools import partial

from bots.api import (
    Context,
    LimitOrder,
    Order,
    OrderIntent,
    Side,
    amend,
    cancel,
    tick_round,
)


def lots_for(ctx: Context, notional: float, price: float) -> int:
    """Whole lots worth about ``notional`` at ``price`` (at least 1, at most max_order_qty)."""
    info = ctx.instrument()
    cap = info.max_order_qty if info else 1_000_000
    return max(1, min(cap, round(notional / price))) if price > 0 else 1


def affordable(ctx: Context, side: Side, qty: int, price: float) -> int:
    """The most of ``qty`` lots (on the main symbol, at ``price``) that the exchange's margin
    check will accept: an order may not raise the initial margin above equity, and
    initial margin counts every open order's worst case (``docs/protocol.md``, Margin).

    Computed here rather than read from ``ctx.available``, which is as of the last account
    update: marks move in between and placing an order does not send one. So a strategy
    that lost (nearly) everything, or sits at its leverage limit, goes quiet instead of
    collecting ``insufficient_margin`` rejects. Keeps 5% of equity spare for what we cannot
    see (fees, the mark moving before the order arrives)."""
    info = ctx.instrument()
    state = ctx.account_state
    if info is None or state is None or price <= 0 or qty <= 0:
        return qty
    equity = state.equity
    others = 0.0
    for held in state.positions:
        mark = ctx.mid(held.symbol) if held.symbol in ctx.books else None
        mark = mark or held.mark_px
        equity += held.qty * (mark - held.mark_px)
        if held.symbol != ctx.symbol:
            other = ctx.instrument(held.symbol)
            others += _margin(ctx, held.symbol, other.initial_margin if other else 0.1, 0, 0.0)
    now = others + _margin(ctx, ctx.symbol, info.initial_margin, 0, 0.0)
    ceiling = max(now, 0.95 * equity)
    signed = price if side == "buy" else -price
    low, high = 0, qty
    while low < high:  # the margin is convex in the added lots: the allowed ones are 0..n
        mid = (low + high + 1) // 2
        if others + _margin(ctx, ctx.symbol, info.initial_margin, mid, signed) <= ceiling:
            low = mid
        else:
            high = mid - 1
    return low


def _margin(ctx: Context, symbol: str, rate: float, lots: int, signed_price: float) -> float:
    """Initial margin of ``symbol``: rate × max(|P + B|, |P − S|), with ``lots`` more at
    ``signed_price`` (positive: a buy)."""
    position = ctx.position(symbol)
    mark = ctx.mid(symbol) if symbol in ctx.books else None
    if mark is None:
        held = ctx.position_info(symbol)
        mark = held.mark_px if held else 0.0
    buys = sells = 0.0
    for order in ctx.open_orders(symbol):
        if order.price is None:
            continue
        rest = order.leaves_qty if order.status != "pending_new" else order.qty
        if order.side == "buy":
            buys += rest * order.price
        else:
            sells += rest * order.price
    if signed_price > 0:
        buys += lots * signed_price
    else:
        sells += lots * -signed_price
    value = position * mark
    return rate * max(abs(value + buys), abs(value - sells))


def others_best(ctx: Context) -> tuple[float | None, float | None]:
    """Best bid and ask of everybody else: the book minus our own resting quantity."""
    mine: dict[tuple[str, float], int] = {}
    for order in ctx.open_orders():
        if order.price is not None and order.status != "pending_new":
            key = (order.side, order.price)
            mine[key] = mine.get(key, 0) + order.leaves_qty
    book = ctx.book()
    bid = next((lv.price for lv in book.bids if lv.qty > mine.get(("buy", lv.price), 0)), None)
    ask = next((lv.price for lv in book.asks if lv.qty > mine.get(("sell", lv.price), 0)), None)
    return bid, ask


class Anchor:
    """The centre of our quotes, ignoring our own orders.

    It starts at the mid (else last trade, else reference price). Each public trade pulls
    it ``follow`` of the way toward the trade's price, and while everybody else quotes at
    most ``max_spread_bps`` wide it drifts toward their mid with a half-life of
    ``halflife_s``. Smoothing matters: execution reports and book updates arrive on
    different connections, so a view of "the book without my orders" is briefly wrong
    after each of our own changes, and a maker that jumped on it would chase itself.

    Trades are also clipped: all the trades within ``clip_window_s`` of the first one of a
    burst move the centre at most ``trade_clip_bps`` from where it was before them (0 = no
    clip). A liquidation closes a position with a market order that sweeps the book and
    then, while the position lasts, eats every new quote as soon as it appears; the prices
    it prints say nothing about value. A maker that re-centred on each of them would quote
    lower (higher) at every round and walk the price away in a second; clipped, it keeps
    quoting near the price before the sweep, absorbs what it can, and stops at its position
    limit, so the rest waits for real buyers (sellers) instead of crashing the price.
    """

    def __init__(
        self,
        follow: float = 0.3,
        halflife_s: float = 2.0,
        trade_clip_bps: float = 0.0,
        clip_window_s: float = 1.0,
    ) -> None:
        self.follow = follow
        self.halflife_ns = halflife_s * 1e9
        self.clip = trade_clip_bps / 1e4
        self.clip_window_ns = int(clip_window_s * 1e9)
        self.price: float | None = None
        self._last_ns = 0
        self._burst_ts: int | None = None
        self._burst_base = 0.0

    def on_trade(self, price: float, ts: int | None = None) -> None:
        """A public trade at ``price`` (engine time ``ts``; None: a burst of its own)."""
        if self.price is None:
            return
        if self.clip > 0:
            if ts is None or self._burst_ts is None or ts - self._burst_ts >= self.clip_window_ns:
                self._burst_ts, self._burst_base = ts, self.price
            reach = self._burst_base * self.clip
            price = min(max(price, self._burst_base - reach), self._burst_base + reach)
        self.price += self.follow * (price - self.price)

    def update(
        self,
        ctx: Context,
        max_spread_bps: float,
        best: tuple[float | None, float | None] | None = None,
    ) -> float | None:
        """The centre now (None while the market has no price at all). ``best`` is
        ``others_best(ctx)`` when the caller has it already (it is computed otherwise)."""
        if self.price is None:
            trades = ctx.trades()
            self.price = ctx.book().mid or (trades[-1].price if trades else ctx.mid())
            self._last_ns = ctx.now_ns
            return self.price
        elapsed = max(0, ctx.now_ns - self._last_ns)
        self._last_ns = ctx.now_ns
        bid, ask = best if best is not None else others_best(ctx)
        if bid is not None and ask is not None and elapsed > 0:
            mid = (bid + ask) / 2
            if ask - bid <= mid * max_spread_bps / 1e4:
                self.price += (1 - 0.5 ** (elapsed / self.halflife_ns)) * (mid - self.price)
        return self.price


def reconcile(
    ctx: Context, side: Side, wanted: list[tuple[float, int]], tolerance: float
) -> list[OrderIntent]:
    """Intents that turn our resting ``side`` orders into ``wanted`` (price, qty) levels,
    best first. An order within ``tolerance`` of its wanted price is left alone (the n-th
    level back within n × ``tolerance``: deep quotes need not follow every tick); others are
    amended, missing levels placed (post-only), surplus orders cancelled. Orders with a
    request in flight are left alone and fill a slot."""
    reverse = side == "buy"
    orders = sorted(
        (o for o in ctx.open_orders(side=side) if o.order_type == "limit"),
        key=lambda o: o.price or 0.0,
        reverse=reverse,
    )
    intents: list[OrderIntent] = []
    for i, (price, qty) in enumerate(wanted):
        if i >= len(orders):
            intents.append(LimitOrder(side, price, qty, post_only=True))
            continue
        order = orders[i]
        if order.pending or order.price is None:
            continue
        if abs(order.price - price) > tolerance * (i + 1):
            intents.append(amend(order, price=price, qty=order.cum_qty + qty))
    intents.extend(cancel(o) for o in orders[len(wanted) :] if not _cancelling(o))
    return intents


def _cancelling(order: Order) -> bool:
    return order.status == "pending_cancel"


def ladder(
    ctx: Context,
    side: Side,
    best: float,
    levels: int,
    spacing: float,
    qty: int,
    limit: float | None,
    growth: float = 1.0,
) -> list[tuple[float, int]]:
    """``levels`` quotes from ``best`` away from the market every ``spacing``, on ticks,
    never crossing ``limit`` (others' best on the far side). The first is ``qty`` lots, and
    each deeper one ``growth`` times the one before (capped at max_order_qty): a book that
    thickens away from the touch absorbs a large order (a liquidation) without the price
    running far."""
    info = ctx.instrument()
    tick = info.tick_size if info else 0.01
    cap = info.max_order_qty if info else 1_000_000
    buy = side == "buy"
    to_tick = partial(tick_round, tick=tick, up=not buy)  # what round_down/round_up do
    out: list[tuple[float, int]] = []
    for i in range(levels):
        if buy:
            price = to_tick(best - i * spacing)
            if limit is not None and price >= limit:
                price = to_tick(limit - tick)
        else:
            price = to_tick(best + i * spacing)
            if limit is not None and price <= limit:
                price = to_tick(limit + tick)
        if out and (price >= out[-1][0] if buy else price <= out[-1][0]):
            price = to_tick(out[-1][0] - tick if buy else out[-1][0] + tick)
        out.append((price, max(1, min(cap, round(qty * growth**i)))))
    return out
