"""Helpers shared by the quoting strategies: sizes, the book without our own orders, and
turning a wish list of quotes into the fewest intents (keep, amend, place, cancel)."""

from __future__ import annotations

from bots.api import (
    Context,
    LimitOrder,
    Order,
    OrderIntent,
    Side,
    amend,
    cancel,
)


def lots_for(ctx: Context, notional: float, price: float) -> int:
    """Whole lots worth about ``notional`` at ``price`` (at least 1, at most max_order_qty)."""
    info = ctx.instrument()
    cap = info.max_order_qty if info else 1_000_000
    return max(1, min(cap, round(notional / price))) if price > 0 else 1


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
    """

    def __init__(self, follow: float = 0.3, halflife_s: float = 2.0) -> None:
        self.follow = follow
        self.halflife_ns = halflife_s * 1e9
        self.price: float | None = None
        self._last_ns = 0

    def on_trade(self, price: float) -> None:
        if self.price is not None:
            self.price += self.follow * (price - self.price)

    def update(self, ctx: Context, max_spread_bps: float) -> float | None:
        """The centre now (None while the market has no price at all)."""
        if self.price is None:
            trades = ctx.trades()
            self.price = ctx.book().mid or (trades[-1].price if trades else ctx.mid())
            self._last_ns = ctx.now_ns
            return self.price
        elapsed = max(0, ctx.now_ns - self._last_ns)
        self._last_ns = ctx.now_ns
        bid, ask = others_best(ctx)
        if bid is not None and ask is not None and elapsed > 0:
            mid = (bid + ask) / 2
            if ask - bid <= mid * max_spread_bps / 1e4:
                self.price += (1 - 0.5 ** (elapsed / self.halflife_ns)) * (mid - self.price)
        return self.price


def reconcile(
    ctx: Context, side: Side, wanted: list[tuple[float, int]], tolerance: float
) -> list[OrderIntent]:
    """Intents that turn our resting ``side`` orders into ``wanted`` (price, qty) levels,
    best first. An order within ``tolerance`` of its wanted price is left alone; others are
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
        if abs(order.price - price) > tolerance:
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
) -> list[tuple[float, int]]:
    """``levels`` quotes from ``best`` away from the market every ``spacing``, on ticks,
    never crossing ``limit`` (others' best on the far side)."""
    tick = ctx.tick_size()
    out: list[tuple[float, int]] = []
    for i in range(levels):
        if side == "buy":
            price = ctx.round_down(best - i * spacing)
            if limit is not None and price >= limit:
                price = ctx.round_down(limit - tick)
        else:
            price = ctx.round_up(best + i * spacing)
            if limit is not None and price <= limit:
                price = ctx.round_up(limit + tick)
        if out and (price >= out[-1][0] if side == "buy" else price <= out[-1][0]):
            price = out[-1][0] - tick if side == "buy" else out[-1][0] + tick
            price = ctx.round_down(price) if side == "buy" else ctx.round_up(price)
        out.append((price, qty))
    return out
