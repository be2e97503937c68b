"""``random``: a noise trader.

Every ``interval_s`` it acts with probability ``activity``: a random side and size, either
an IOC at the touch (``market_probability``) or a limit order a random distance from the
mid that rests until ``order_lifetime_s`` has passed. Sides persist (``persistence``), so
positions trend. It levers up to ``max_leverage`` times its equity and then holds on (it
adds nothing more, and reduces only when its side flips), so in a moving market it
sometimes gets liquidated: that is its job in the demo. Orders that the margin cannot pay
for are cut down (or not sent), so it does not collect ``insufficient_margin`` rejects.
"""

from __future__ import annotations

from bots.api import (
    Context,
    Intents,
    LimitOrder,
    OrderIntent,
    Side,
    Strategy,
    StrategyConfig,
    cancel,
)
from bots.strategies._quoting import affordable, lots_for


class RandomConfig(StrategyConfig):
    interval_s: float = 0.7
    activity: float = 0.6
    market_probability: float = 0.35
    order_notional: float = 12_000.0
    max_offset_bps: float = 25.0
    """Limit orders go up to this far from the mid (negative offsets cross the spread)."""
    order_lifetime_s: float = 20.0
    max_leverage: float = 15.0
    """Largest position value as a multiple of equity."""
    persistence: float = 0.65
    """Chance of trading the same side as last time: above 0.5 positions trend and grow."""


class RandomTrader(Strategy[RandomConfig]):
    """Random orders with a leverage cap (see module doc)."""

    def __init__(self, config: RandomConfig | None = None) -> None:
        super().__init__(config)
        self.timer_interval = self.config.interval_s
        self._placed_ns: dict[str, int] = {}
        self._last_side: Side = "buy"

    def on_timer(self, ctx: Context) -> Intents:
        cfg = self.config
        intents: list[OrderIntent] = []
        lifetime_ns = int(cfg.order_lifetime_s * 1e9)
        for order in ctx.open_orders():
            coid = order.client_order_id or ""
            placed = self._placed_ns.setdefault(coid, ctx.now_ns)
            if not order.pending and ctx.now_ns - placed > lifetime_ns:
                intents.append(cancel(order))
        live = {o.client_order_id for o in ctx.orders.values()}
        self._placed_ns = {k: v for k, v in self._placed_ns.items() if k in live}
        mid = ctx.mid()
        status = ctx.status()
        if mid is None or status == "halted" or ctx.random.random() >= cfg.activity:
            return intents  # halted: cancels only (new orders would be rejected)
        side: Side = self._last_side
        if ctx.random.random() >= cfg.persistence:
            side = "sell" if side == "buy" else "buy"
        position_value = ctx.position() * mid
        limit = cfg.max_leverage * max(ctx.equity, 0.0)
        if (side == "buy" and position_value >= limit) or (
            side == "sell" and position_value <= -limit
        ):
            return intents  # at the cap it holds on (it never cuts a losing position early)
        self._last_side = side
        qty = lots_for(ctx, cfg.order_notional * (0.2 + 1.6 * ctx.random.random()), mid)
        bid, ask = ctx.bbo()
        if ctx.random.random() < cfg.market_probability:
            touch = ask if side == "buy" else bid
            if touch is not None and status == "open":  # no IOC in an auction
                qty = affordable(ctx, side, qty, touch)
                if qty > 0:
                    intents.append(LimitOrder(side, touch, qty, tif="ioc"))
            return intents
        offset = mid * ctx.random.uniform(-0.2, 1.0) * cfg.max_offset_bps / 1e4
        if side == "buy":
            price = ctx.round_down(mid - offset)
        else:
            price = ctx.round_up(mid + offset)
        qty = affordable(ctx, side, qty, price)
        if qty > 0:
            intents.append(LimitOrder(side, price, qty))
        return intents
