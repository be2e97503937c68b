"""A complete example strategy: fade moves away from the recent average trade price.

Run it (from the repository root, with the system up; ``tutorial`` is the account no
Procfile bot trades)::

    .venv/bin/python -m bots --strategy examples.mean_reversion:MeanReversion \
        --account tutorial --api-key tutorial-key --symbol AAPL --param window=10

How it works: it keeps no state of its own beyond a few counters. ``next_order`` looks at
the last ``window`` public trades; when the mid is more than ``threshold_bps`` above their
average it offers to sell at the best ask, below it bids at the best bid (post-only, so it
always provides liquidity), within ``max_position`` lots. An order that has not filled
after ``order_ttl_s`` seconds is cancelled on the timer, so it follows the market.

It imports only ``bots.api``: that is the whole contract between a strategy and the runner.
"""

from __future__ import annotations

from bots.api import (
    Context,
    ExecutionReport,
    Intents,
    LimitOrder,
    Strategy,
    StrategyConfig,
    cancel,
)


class MeanReversionConfig(StrategyConfig):
    window: int = 20
    """How many recent trades make the average."""
    threshold_bps: float = 5.0
    """How far (basis points) the mid must stray from the average before we act."""
    size: int = 5
    """Lots per order."""
    max_position: int = 50
    """Never hold more than this many lots either way."""
    order_ttl_s: float = 5.0
    """Cancel an order that has not filled after this many seconds."""


class MeanReversion(Strategy[MeanReversionConfig]):
    """Sells above the recent average, buys below it (see the module docstring)."""

    timer_interval = 1.0

    def __init__(self, config: MeanReversionConfig | None = None) -> None:
        super().__init__(config)
        self.fills = 0
        self.placed_at: dict[str, int] = {}

    def on_execution(self, ctx: Context, report: ExecutionReport) -> Intents:
        if report.exec_type == "trade":
            self.fills += 1
        if report.exec_type == "new" and report.client_order_id:
            self.placed_at[report.client_order_id] = ctx.now_ns
        return None

    def on_timer(self, ctx: Context) -> Intents:
        ttl_ns = int(self.config.order_ttl_s * 1e9)
        return [
            cancel(order)
            for order in ctx.open_orders()
            if not order.pending
            and ctx.now_ns - self.placed_at.get(order.client_order_id or "", ctx.now_ns) > ttl_ns
        ]

    def next_order(self, ctx: Context) -> Intents:
        cfg = self.config
        trades = ctx.trades()[-cfg.window :]
        bid, ask = ctx.bbo()
        if len(trades) < cfg.window or bid is None or ask is None or ctx.open_orders():
            return None
        average = sum(t.price for t in trades) / len(trades)
        mid = (bid + ask) / 2
        position = ctx.position()
        if mid >= average * (1 + cfg.threshold_bps / 1e4) and position > -cfg.max_position:
            return LimitOrder("sell", ask, cfg.size, post_only=True)
        if mid <= average * (1 - cfg.threshold_bps / 1e4) and position < cfg.max_position:
            return LimitOrder("buy", bid, cfg.size, post_only=True)
        return None
