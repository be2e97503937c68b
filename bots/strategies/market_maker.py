"""``market_maker``: a maker that manages risk: inventory skew and a spread that widens
with volatility.

- Volatility: an exponentially weighted estimate of the variance of the market's log
  returns per second, sampled on the timer (``vol_halflife_s``).
- Spread: ``base_spread_bps`` plus ``vol_multiplier`` × volatility (bps per √s), capped at
  ``max_spread_bps``.
- Inventory: quotes shift by up to ``skew_bps`` against the position, and the size on the
  side that would grow it shrinks linearly to zero at ``max_position_notional``.
- Centre and depth as for ``maker``: trades pull the centre (``follow``), at most
  ``trade_clip_bps`` per second of trades; deeper levels grow by ``size_growth``.
"""

from __future__ import annotations

import math

from bots.api import Context, Intents, Strategy, StrategyConfig, Trade
from bots.strategies._quoting import (
    Anchor,
    ladder,
    lots_for,
    others_best,
    reconcile,
)


class MarketMakerConfig(StrategyConfig):
    base_spread_bps: float = 8.0
    vol_multiplier: float = 3.0
    max_spread_bps: float = 150.0
    vol_halflife_s: float = 20.0
    levels: int = 2
    level_spacing_bps: float = 5.0
    order_notional: float = 10_000.0
    max_position_notional: float = 400_000.0
    skew_bps: float = 25.0
    requote_bps: float = 3.0
    follow: float = 0.5
    trade_clip_bps: float = 15.0
    size_growth: float = 1.0


class MarketMaker(Strategy[MarketMakerConfig]):
    """Inventory-aware, volatility-aware quoting (see module doc)."""

    timer_interval = 0.5

    def __init__(self, config: MarketMakerConfig | None = None) -> None:
        super().__init__(config)
        self.anchor = Anchor(self.config.follow, trade_clip_bps=self.config.trade_clip_bps)
        self.variance = 0.0
        """EWMA of squared log returns per second."""
        self._last_price: float | None = None
        self._last_ns = 0

    @property
    def volatility_bps(self) -> float:
        """Estimated volatility, in basis points per √second."""
        return math.sqrt(self.variance) * 1e4

    def _spread_bps(self) -> float:
        cfg = self.config
        return min(
            cfg.max_spread_bps, cfg.base_spread_bps + cfg.vol_multiplier * self.volatility_bps
        )

    def on_trade(self, ctx: Context, trade: Trade) -> Intents:
        self.anchor.on_trade(trade.price, trade.ts)
        return None

    def on_timer(self, ctx: Context) -> Intents:
        price = self.anchor.update(ctx, 2 * self._spread_bps())
        now = ctx.now_ns
        if price is None:
            return None
        if self._last_price is not None and now > self._last_ns:
            dt = (now - self._last_ns) / 1e9
            r2 = math.log(price / self._last_price) ** 2 / dt
            weight = 1 - 0.5 ** (dt / self.config.vol_halflife_s)
            self.variance += weight * (r2 - self.variance)
        self._last_price, self._last_ns = price, now
        return None

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
        half = fair * self._spread_bps() / 2e4
        spacing = fair * cfg.level_spacing_bps / 1e4
        base_qty = lots_for(ctx, cfg.order_notional, fair)
        bid_qty = max(1, round(base_qty * min(1.0, 1 - inventory)))
        ask_qty = max(1, round(base_qty * min(1.0, 1 + inventory)))
        other_bid, other_ask = best
        bids = ladder(
            ctx, "buy", fair - half, cfg.levels, spacing, bid_qty, other_ask, cfg.size_growth
        )
        asks = ladder(
            ctx, "sell", fair + half, cfg.levels, spacing, ask_qty, other_bid, cfg.size_growth
        )
        if inventory >= 1.0:
            bids = []
        if inventory <= -1.0:
            asks = []
        tolerance = fair * cfg.requote_bps / 1e4
        return reconcile(ctx, "buy", bids, tolerance) + reconcile(ctx, "sell", asks, tolerance)
