"""``news_trader``: trades the headlines (PROTOCOL §3.3 news).

When a news item names its symbol with ``|sentiment| >= min_sentiment``, it buys (good
news) or sells (bad news) with an IOC order at most ``max_slippage_bps`` through the touch,
sized ``order_notional × |sentiment|`` (what the margin check allows). It then holds the
position for ``hold_s`` seconds and closes it the same way, also early when the price moved
``take_profit_bps`` its way or ``stop_loss_bps`` against it. News that arrives while it
holds a position in the same direction adds nothing; news the other way closes it first.
A new round (``on_round``) forgets the trade: the venue closed every position. While its
symbol is halted or in auction (no IOC accepted) it sends nothing: the latest news that came
meanwhile is traded when the symbol opens again (``on_status``), and a due exit waits.
"""

from __future__ import annotations

from bots.api import (
    Context,
    Intents,
    LimitOrder,
    MarketStatus,
    News,
    RoundStarted,
    Side,
    Strategy,
    StrategyConfig,
)
from bots.strategies._quoting import affordable, lots_for


class NewsTraderConfig(StrategyConfig):
    min_sentiment: float = 0.3
    """Ignore news whose |sentiment| is below this."""
    order_notional: float = 50_000.0
    """Size of a trade on news of sentiment ±1, in quote currency (scaled by |sentiment|)."""
    hold_s: float = 60.0
    """Close the position this long after entering."""
    take_profit_bps: float = 100.0
    stop_loss_bps: float = 50.0
    max_slippage_bps: float = 20.0
    """IOC orders are priced at most this far through the touch."""


class NewsTrader(Strategy[NewsTraderConfig]):
    """Buys good news, sells bad news, and gets out after a while (see module doc)."""

    timer_interval = 1.0

    def __init__(self, config: NewsTraderConfig | None = None) -> None:
        super().__init__(config)
        self.entry_price: float | None = None
        self.exit_at_ns = 0
        self.pending: News | None = None
        """News that came while the symbol was not open, traded when it opens."""

    def on_news(self, ctx: Context, news: News) -> Intents:
        cfg = self.config
        if ctx.symbol not in news.symbols or abs(news.sentiment) < cfg.min_sentiment:
            return None
        if ctx.status() != "open":
            self.pending = news  # no IOC while halted or in auction: trade it at the open
            return None
        side: Side = "buy" if news.sentiment > 0 else "sell"
        position = ctx.position()
        if (position > 0 and side == "buy") or (position < 0 and side == "sell"):
            return None
        if position:
            return self._close(ctx)  # the news turned against us: out first
        mid = ctx.mid()
        if mid is None:
            return None
        qty = lots_for(ctx, cfg.order_notional * abs(news.sentiment), mid)
        order = self._ioc(ctx, side, qty)
        if order is not None:
            self.entry_price = mid
            self.exit_at_ns = ctx.now_ns + int(cfg.hold_s * 1e9)
        return order

    def on_status(self, ctx: Context, status: MarketStatus) -> Intents:
        if status.symbol != ctx.symbol or status.status != "open" or self.pending is None:
            return None
        news, self.pending = self.pending, None
        return self.on_news(ctx, news)

    def on_round(self, ctx: Context, started: RoundStarted) -> Intents:
        self.entry_price = None
        self.pending = None
        return None

    def on_timer(self, ctx: Context) -> Intents:
        position = ctx.position()
        if not position or self.entry_price is None:
            return None
        mid = ctx.mid()
        if mid is None:
            return None
        move_bps = (mid / self.entry_price - 1) * 1e4 * (1 if position > 0 else -1)
        cfg = self.config
        if (
            ctx.now_ns >= self.exit_at_ns
            or move_bps >= cfg.take_profit_bps
            or move_bps <= -cfg.stop_loss_bps
        ):
            return self._close(ctx)
        return None

    def _close(self, ctx: Context) -> Intents:
        position = ctx.position()
        if position > 0:
            return self._ioc(ctx, "sell", position)
        if position < 0:
            return self._ioc(ctx, "buy", -position)
        return None

    def _ioc(self, ctx: Context, side: Side, qty: int) -> LimitOrder | None:
        if ctx.status() != "open":
            return None  # halted or in auction: an IOC would be rejected market_halted
        bid, ask = ctx.bbo()
        slip = self.config.max_slippage_bps / 1e4
        if side == "buy":
            if ask is None:
                return None
            price = ctx.round_down(ask * (1 + slip))
        else:
            if bid is None:
                return None
            price = ctx.round_up(bid * (1 - slip))
        qty = affordable(ctx, side, qty, price) if ctx.position() == 0 else qty
        return LimitOrder(side, price, qty, tif="ioc") if qty > 0 else None
