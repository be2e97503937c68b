"""``gambler``: an all-in momentum bettor that the liquidation engine regularly closes out.

Every ``interval_s`` it looks at the mid. When it holds nothing it bets on the last
``lookback_s`` move continuing (if the move was at least ``entry_bps``): it commits
``margin_use`` of its equity as initial margin (0.95 on a 10% margin instrument is 9.5x
leverage; at most ``max_bet_notional``) with IOC orders at most ``max_slippage_bps``
through the touch, topping up a partly filled bet on later looks to the size it chose at
the start (winnings are not pyramided into bigger bets). It closes the bet once the price
has moved ``take_profit_bps`` its way, and it has no stop loss: a bet that goes wrong ends
in a liquidation. Then it waits ``cooldown_s`` and bets again with what is left, which
shrinks with every liquidation; when its equity cannot pay for one lot any more (a
liquidation that ate everything leaves cash at 0) it stays flat and sends nothing. A
rejected order also pauses it for ``cooldown_s``, so it never floods the gateway with
rejects.
"""

from __future__ import annotations

from collections import deque

from bots.api import (
    Context,
    ExecutionReport,
    Intents,
    LimitOrder,
    Side,
    Strategy,
    StrategyConfig,
)
from bots.strategies._quoting import affordable


class GamblerConfig(StrategyConfig):
    interval_s: float = 1.0
    """How often it looks at the market."""
    lookback_s: float = 60.0
    """Momentum window: a new bet follows the price move over this long."""
    entry_bps: float = 10.0
    """Bet only when the price moved at least this far over the window."""
    contrarian: bool = False
    """Bet against the move instead (catch the falling knife)."""
    margin_use: float = 0.95
    """Fraction of equity committed as initial margin per bet (the leverage is this over
    the instrument's initial margin rate)."""
    max_bet_notional: float = 1_000_000.0
    """Largest bet, in quote currency (0 = no limit): what a liquidation must absorb."""
    take_profit_bps: float = 120.0
    """Close the bet once the price moved this far its way (there is no stop loss)."""
    max_slippage_bps: float = 10.0
    """IOC orders are priced at most this far through the touch."""
    cooldown_s: float = 30.0
    """Pause after a bet ends (won, or lost to a liquidation) and after a reject."""


class Gambler(Strategy[GamblerConfig]):
    """Leveraged momentum bets without a stop loss (see module doc)."""

    def __init__(self, config: GamblerConfig | None = None) -> None:
        super().__init__(config)
        self.timer_interval = self.config.interval_s
        self.history: deque[tuple[int, float]] = deque()
        """(ns, mid) samples covering the last ``lookback_s``."""
        self.bet: Side | None = None
        """The side of the bet in progress, None while flat."""
        self.entry_price = 0.0
        self.target = 0
        """Lots the bet in progress aims for."""
        self.closing = False
        """True once the bet reached its profit target, until it is flat."""
        self.cooldown_until_ns = 0

    def on_execution(self, ctx: Context, report: ExecutionReport) -> Intents:
        if report.exec_type == "rejected":
            self._pause(ctx)
            if ctx.position() == 0:
                self.bet, self.closing = None, False  # the bet never started
        return None

    def on_timer(self, ctx: Context) -> Intents:
        mid = ctx.mid()
        if mid is None:
            return None
        now = ctx.now_ns
        self.history.append((now, mid))
        horizon = now - int(self.config.lookback_s * 1e9)
        while len(self.history) > 1 and self.history[1][0] <= horizon:
            self.history.popleft()
        state = ctx.account_state
        if state is None or state.liquidating or ctx.open_orders() or ctx.status() != "open":
            # the exchange is closing us out, our last IOC is in flight, or no IOC is
            # accepted now (halted or in auction)
            return None
        position = ctx.position()
        if self.bet is not None and position == 0:
            self.bet, self.closing = None, False  # won and closed, or liquidated
            self._pause(ctx)
        elif self.bet is None and position != 0:
            self._adopt(ctx, position, mid)  # a position from before a restart
        if now < self.cooldown_until_ns:
            return None
        if self.bet is None:
            return self._open(ctx, mid, horizon)
        direction = 1 if self.bet == "buy" else -1
        if direction * (mid / self.entry_price - 1) * 1e4 >= self.config.take_profit_bps:
            self.closing = True
        if self.closing or direction * position < 0:
            return self._ioc(ctx, "sell" if position > 0 else "buy", abs(position))
        missing = self.target - abs(position)
        if missing * 10 >= self.target:  # a bet filled less than ~90%: top it up
            return self._ioc(ctx, self.bet, min(missing, self._bet_size(ctx, self.bet)))
        return None

    def _adopt(self, ctx: Context, position: int, mid: float) -> None:
        info = ctx.position_info()
        self.bet, self.target = ("buy" if position > 0 else "sell"), abs(position)
        self.entry_price = info.avg_px if info is not None and info.avg_px > 0 else mid

    def _open(self, ctx: Context, mid: float, horizon: int) -> Intents:
        start_ns, start = self.history[0]
        if start_ns > horizon:
            return None  # not a full window of history yet
        move_bps = (mid / start - 1) * 1e4
        if abs(move_bps) < self.config.entry_bps:
            return None
        side: Side = "buy" if (move_bps > 0) != self.config.contrarian else "sell"
        qty = self._bet_size(ctx, side)
        if qty < 1:
            return None  # too poor for one lot: stay flat, quietly
        self.bet, self.entry_price, self.target = side, mid, qty
        return self._ioc(ctx, side, qty)

    def _bet_size(self, ctx: Context, side: Side) -> int:
        """Lots whose initial margin is ``margin_use`` of our equity (at our IOC price, up to
        ``max_bet_notional``), less what we hold already; 0 when broke."""
        cfg = self.config
        info = ctx.instrument()
        price = self._price(ctx, side)
        if info is None or price is None or ctx.equity <= 0:
            return 0
        notional = cfg.margin_use * ctx.equity / info.initial_margin
        if cfg.max_bet_notional > 0:
            notional = min(notional, cfg.max_bet_notional)
        qty = int(notional / price) - abs(ctx.position())
        return max(0, min(qty, info.max_order_qty, info.max_position))

    def _price(self, ctx: Context, side: Side) -> float | None:
        bid, ask = ctx.bbo()
        slip = self.config.max_slippage_bps / 1e4
        if side == "buy":
            return ctx.round_down(ask * (1 + slip)) if ask is not None else None
        return ctx.round_up(bid * (1 - slip)) if bid is not None else None

    def _ioc(self, ctx: Context, side: Side, qty: int) -> Intents:
        price = self._price(ctx, side)
        if price is None or qty < 1:
            return None
        qty = affordable(ctx, side, qty, price)
        return LimitOrder(side, price, qty, tif="ioc") if qty > 0 else None

    def _pause(self, ctx: Context) -> None:
        self.cooldown_until_ns = ctx.now_ns + int(self.config.cooldown_s * 1e9)
