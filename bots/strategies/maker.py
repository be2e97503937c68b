"""``maker``: quotes both sides around the market, a few levels deep.

The centre is everybody else's mid when they quote tightly (our own quotes left out, so
two makers do not chase each other), else our previous centre pulled toward each trade
(``follow``, at most ``trade_clip_bps`` per second of trades, so a liquidation sweeping the book
does not drag the quotes after it); it is shifted against our inventory so that a position tends to
shrink. A side that would grow the position past ``max_position_notional`` is not quoted.
Deeper levels can be bigger (``size_growth``), so the book thickens away from the touch.
"""

from __future__ import annotations

from bots.api import Context, Intents, Strategy, StrategyConfig, Trade
from bots.strategies._quoting import (
    Anchor,
    ladder,
    lots_for,
    others_best,
    reconcile,
)


class MakerConfig(StrategyConfig):
    spread_bps: float = 12.0
    """Distance between our best bid and best ask, in basis points of the price."""
    levels: int = 3
    """Quotes per side."""
    level_spacing_bps: float = 6.0
    order_notional: float = 6_000.0
    """Size of each quote, in quote currency (rounded to whole lots, at least one)."""
    max_position_notional: float = 250_000.0
    skew_bps: float = 10.0
    """How far quotes move against the inventory when it is at its maximum."""
    requote_bps: float = 4.0
    """Leave a quote alone while it is within this distance of where it should be."""
    follow: float = 0.5
    """When nobody else quotes tightly, how far each trade pulls our centre toward it."""
    trade_clip_bps: float = 15.0
    """The trades of any one second (a sweep, and the quotes a liquidation eats after it)
    move our centre at most this far (0 = no clip)."""
    size_growth: float = 1.0
    """Each deeper level is this many times the size of the one before (1.5 makes a book
    that thickens away from the touch and absorbs a liquidation's sweep)."""


class Maker(Strategy[MakerConfig]):
    """Quotes ``levels`` post-only orders per side around the market (see module doc)."""

    timer_interval = 1.0

    def __init__(self, config: MakerConfig | None = None) -> None:
        super().__init__(config)
        self.anchor = Anchor(self.config.follow, trade_clip_bps=self.config.trade_clip_bps)

    def on_trade(self, ctx: Context, trade: Trade) -> Intents:
        self.anchor.on_trade(trade.price, trade.ts)
        return None

    def _spread_bps(self) -> float:
        return self.config.spread_bps

    def next_order(self, ctx: Context) -> Intents:
        if ctx.status() == "halted":
            return None  # new orders would be rejected market_halted; quotes wait (§3.2)
        cfg = self.config
        best = others_best(ctx)
        centre = self.anchor.update(ctx, 2 * self._spread_bps(), best)
        if centre is None:
            return None
        position_value = ctx.position() * centre
        inventory = max(-1.0, min(1.0, position_value / cfg.max_position_notional))
        fair = centre * (1 - inventory * cfg.skew_bps / 1e4)
        half = fair * cfg.spread_bps / 2e4
        spacing = fair * cfg.level_spacing_bps / 1e4
        qty = lots_for(ctx, cfg.order_notional, fair)
        other_bid, other_ask = best
        bids = ladder(ctx, "buy", fair - half, cfg.levels, spacing, qty, other_ask, cfg.size_growth)
        asks = ladder(
            ctx, "sell", fair + half, cfg.levels, spacing, qty, other_bid, cfg.size_growth
        )
        if position_value >= cfg.max_position_notional:
            bids = []
        if position_value <= -cfg.max_position_notional:
            asks = []
        tolerance = fair * cfg.requote_bps / 1e4
        return reconcile(ctx, "buy", bids, tolerance) + reconcile(ctx, "sell", asks, tolerance)
