"""``taker``: an informed trader that crosses the spread.

It carries a private fair value that follows a random walk (``volatility_bps`` per
√second, from the seeded ``ctx.random``): when the best ask is below it by more than
``edge_bps`` it buys, when the best bid is above it it sells, with IOC orders priced at
its fair value (so it never pays more than it thinks the asset is worth). Now and then it
also trades at random (``noise_probability``). This is what moves prices: makers lean
against their inventory, so they follow the informed flow.

The fair value is also pulled back toward the instrument's reference price with a half-life
of ``reference_halflife_s`` (a mean-reverting "fundamental value"), so a long demo run
wanders around the reference instead of drifting away without bound, and prices that a
big trade or a liquidation pushed away are traded back. Its orders stay inside the price
band (the exchange would reject them otherwise).
"""

from __future__ import annotations

import math

from bots.api import Context, Intents, LimitOrder, Side, Strategy, StrategyConfig
from bots.strategies._quoting import affordable, lots_for


class TakerConfig(StrategyConfig):
    interval_s: float = 0.5
    """How often it looks at the market."""
    volatility_bps: float = 12.0
    """Random walk of the private fair value, in basis points per √second."""
    edge_bps: float = 4.0
    """Trade only when the price is at least this far on the right side of fair value."""
    order_notional: float = 8_000.0
    max_leverage: float = 3.0
    """Largest position value as a multiple of equity (then it only trades to reduce)."""
    noise_probability: float = 0.15
    """Chance per look of a random-side trade regardless of the fair value."""
    mean_reversion: float = 0.0005
    """Pull of the fair value back toward the market per look (keeps the two together)."""
    reference_halflife_s: float = 900.0
    """Half-life of the fair value's pull toward the reference price (0 = no pull)."""


class Taker(Strategy[TakerConfig]):
    """Informed IOC trading around a random-walk fair value (see module doc)."""

    def __init__(self, config: TakerConfig | None = None) -> None:
        super().__init__(config)
        self.timer_interval = self.config.interval_s
        self.fair: float | None = None

    def on_start(self, ctx: Context) -> Intents:
        self.fair = ctx.mid()
        return None

    def on_timer(self, ctx: Context) -> Intents:
        cfg = self.config
        mid = ctx.mid()
        if mid is None:
            return None
        if self.fair is None:
            self.fair = mid
        step = cfg.volatility_bps / 1e4 * math.sqrt(cfg.interval_s)
        self.fair *= math.exp(ctx.random.gauss(0.0, step))
        self.fair += cfg.mean_reversion * (mid - self.fair)
        info = ctx.instrument()
        if info is not None and cfg.reference_halflife_s > 0:
            keep = 0.5 ** (cfg.interval_s / cfg.reference_halflife_s)
            self.fair = info.reference_price * (self.fair / info.reference_price) ** keep
        if ctx.status() != "open" or ctx.open_orders():
            return None  # no IOC while halted or in auction; or the last one is in flight
        bid, ask = ctx.bbo()
        position_value = ctx.position() * mid
        qty = lots_for(ctx, cfg.order_notional * (0.5 + ctx.random.random()), mid)
        edge = self.fair * cfg.edge_bps / 1e4
        cap = cfg.max_leverage * max(ctx.equity, 0.0)
        can_buy = position_value < cap
        can_sell = position_value > -cap
        low, high = _band(ctx)
        side: Side | None = None
        price = 0.0
        if ask is not None and can_buy and ask < min(self.fair - edge, high):
            side, price = "buy", ctx.round_down(min(self.fair - edge, high))
        elif bid is not None and can_sell and bid > max(self.fair + edge, low):
            side, price = "sell", ctx.round_up(max(self.fair + edge, low))
        elif ctx.random.random() < cfg.noise_probability:
            if ctx.random.random() < 0.5:
                if ask is not None and can_buy:
                    side, price = "buy", ask
            elif bid is not None and can_sell:
                side, price = "sell", bid
        if side is None:
            return None
        qty = affordable(ctx, side, qty, price)
        return LimitOrder(side, price, qty, tif="ioc") if qty > 0 else None


def _band(ctx: Context) -> tuple[float, float]:
    """Prices the exchange accepts now: within the band around the last trade (a little
    inside it, as our view of the last trade may lag by a message)."""
    info = ctx.instrument()
    if info is None or info.price_band <= 0:
        return 0.0, math.inf
    trades = ctx.trades()
    last = trades[-1].price if trades else info.reference_price
    width = last * info.price_band * 0.98
    return last - width, last + width
