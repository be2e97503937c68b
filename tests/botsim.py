"""Bots against the matching core in one process, on simulated time: no sockets, no sleeps.

Each bot is a real ``BotDriver`` (the runner's sans-I/O heart) with its strategy; the
core's events are routed as the gateway and relay would (private events to their account,
book deltas chained into ``book_update``s with ``prev_seq``, fills stripped to public
trades). Used by tests to check what the built-in strategies do to a market, and to tune
their defaults::

    .venv/bin/python -m tests.botsim 600     # ten simulated minutes of the Procfile's bots
"""

from __future__ import annotations

import heapq
import random
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bots.api import Context
from bots.driver import BotDriver
from bots.loader import load_strategy_class
from bots.params import build_config, parse_assignments
from exchange.core import CoreConfig, Exchange
from exchange.protocol.config import load_config
from exchange.protocol.messages import (
    AccountUpdate,
    BookDelta,
    BookSnapshot,
    BookUpdate,
    CancelAllDone,
    CancelReject,
    ExecutionReport,
    Fill,
    GetAccount,
    GetOrders,
    Instruments,
    Limits,
    Liquidation,
    Orders,
    Trade,
)
from tests.support import REPO_ROOT

LIMITS = Limits(orders_per_second=200.0, burst=400, max_open_orders=200)
NS = 1_000_000_000


@dataclass
class SimBot:
    name: str
    account: str
    symbol: str
    driver: BotDriver
    errors: list[BaseException] = field(default_factory=list)


@dataclass
class SimResult:
    trades: list[Fill]
    liquidations: list[Liquidation]
    equity: dict[str, float]
    stats: dict[str, Counter[str]]
    prices: dict[str, list[float]]


class Simulation:
    """A core plus bots; ``run(seconds)`` advances simulated time."""

    def __init__(self, config_path: str | None = None) -> None:
        system = load_config(config_path)
        self.core = Exchange(
            CoreConfig(
                instruments=system.instruments,
                accounts=system.accounts,
                max_open_orders=system.max_open_orders,
                insurance_account=system.insurance_account,
                insurance_fund_cash=system.insurance_fund_cash,
            )
        )
        self.bots: list[SimBot] = []
        self.now_ns = 1_700_000_000 * NS
        self.book_seq: dict[str, int] = {}
        self.fills: list[Fill] = []
        self.liquidations: list[Liquidation] = []
        self.prices: dict[str, list[float]] = {}
        self._timers: list[tuple[int, int, int]] = []

    def add_bot(
        self,
        strategy: str,
        account: str,
        symbol: str,
        seed: int,
        params: dict[str, Any] | None = None,
    ) -> SimBot:
        cls = load_strategy_class(strategy)
        config = build_config(cls.Config, params or {}, strategy_name=strategy)
        ctx = Context(account=account, symbols=[symbol], rng=random.Random(seed))
        bot = SimBot(f"{account}:{strategy}", account, symbol, None)  # type: ignore[arg-type]
        bot.driver = BotDriver(
            cls(config),
            ctx,
            client_order_prefix=f"{account}-",
            on_error=lambda _hook, exc: bot.errors.append(exc),
        )
        self.bots.append(bot)
        index = len(self.bots) - 1
        interval = bot.driver.strategy.timer_interval
        if interval:
            heapq.heappush(self._timers, (self.now_ns + int(interval * NS), index, index))
        return bot

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> float:
        return self.now_ns / NS

    def _connect(self, bot: SimBot) -> None:
        driver, ctx = bot.driver, bot.driver.context
        ctx.now_ns = self.now_ns
        driver.market_data(Instruments(instruments=self.core.instruments()), self._now())
        for request in driver.login(LIMITS, self._now()):
            if isinstance(request, GetAccount):
                driver.gateway(self.core.account_reply(bot.account), self._now())
            elif isinstance(request, GetOrders):
                orders = self.core.open_orders(bot.account)
                driver.gateway(Orders(orders=orders), self._now())
        book = self.core.book(bot.symbol)
        assert book is not None
        bids, asks = book.depth(ctx.depth)
        to_price = book.instrument.to_price
        snapshot = BookSnapshot(
            symbol=bot.symbol,
            seq=self.book_seq.get(bot.symbol, 0),
            ts=self.now_ns,
            bids=[(to_price(p), q) for p, q in bids],
            asks=[(to_price(p), q) for p, q in asks],
        )
        driver.market_data(snapshot, self._now())

    def _publish(self, events: list[Any]) -> None:
        for event in events:
            match event:
                case ExecutionReport() | CancelReject() | CancelAllDone() | AccountUpdate():
                    for bot in self.bots:
                        if bot.account == event.account:
                            bot.driver.gateway(event, self._now())
                case BookDelta():
                    prev = self.book_seq.get(event.symbol, 0)
                    self.book_seq[event.symbol] = event.seq
                    update = BookUpdate(
                        symbol=event.symbol,
                        seq=event.seq,
                        prev_seq=prev,
                        ts=event.ts,
                        bids=event.bids,
                        asks=event.asks,
                    )
                    for bot in self.bots:
                        bot.driver.market_data(update, self._now())
                case Fill():
                    self.fills.append(event)
                    self.prices.setdefault(event.symbol, []).append(event.price)
                    trade = Trade(
                        symbol=event.symbol,
                        trade_id=event.trade_id,
                        price=event.price,
                        qty=event.qty,
                        aggressor=event.aggressor,
                        ts=event.ts,
                        seq=event.seq,
                    )
                    for bot in self.bots:
                        bot.driver.market_data(trade, self._now())
                case Liquidation():
                    self.liquidations.append(event)

    def _pump(self) -> None:
        """Send what the bots want to send until nobody wants anything (bounded)."""
        for _ in range(10_000):
            busy = False
            for bot in self.bots:
                for request in bot.driver.take_requests(self._now()):
                    busy = True
                    self.now_ns += 1_000  # 1 µs per command keeps ts increasing
                    self._publish(self.core.submit(bot.account, request, self.now_ns))
            if not busy:
                return

    def run(self, seconds: float, revalue_every_s: float = 1.0) -> SimResult:
        """Advance ``seconds`` of simulated time, firing timers in order."""
        from exchange.protocol.messages import Revalue

        for bot in self.bots:
            if not bot.driver.logged_in:
                self._connect(bot)
        self._pump()
        end = self.now_ns + int(seconds * NS)
        next_revalue = self.now_ns + int(revalue_every_s * NS)
        while self._timers and self._timers[0][0] <= end:
            when, _, index = heapq.heappop(self._timers)
            while next_revalue <= when:
                self.now_ns = max(self.now_ns, next_revalue)
                self._publish(self.core.submit("", Revalue(), self.now_ns))
                next_revalue += int(revalue_every_s * NS)
            self.now_ns = max(self.now_ns, when)
            bot = self.bots[index]
            bot.driver.context.now_ns = self.now_ns
            bot.driver.timer(self._now())
            self._pump()
            interval = bot.driver.strategy.timer_interval or 1.0
            heapq.heappush(self._timers, (self.now_ns + int(interval * NS), index, index))
        equity = {
            bot.account: (self.core.account_reply(bot.account) or _missing(bot.account)).equity
            for bot in self.bots
        }
        return SimResult(
            trades=self.fills,
            liquidations=self.liquidations,
            equity=equity,
            stats={bot.name: bot.driver.stats for bot in self.bots},
            prices=self.prices,
        )


def _missing(account: str) -> Any:
    raise KeyError(account)


def procfile_bots(procfile: Path = REPO_ROOT / "Procfile") -> list[dict[str, Any]]:
    """The bots the Procfile starts, as parsed settings (name, strategy, account, api_key,
    symbol, seed, params): so the simulation runs exactly what ``honcho start`` runs."""
    from bots.cli import parser

    bots = []
    for line in procfile.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[:1] == ["exec"]:
            argv = argv[1:]
        if argv[1:3] != ["-m", "bots"]:
            continue
        args = parser().parse_args(argv[3:])
        bots.append(
            {
                "name": name.strip(),
                "strategy": args.strategy,
                "account": args.account,
                "api_key": args.api_key,
                "symbol": args.symbol,
                "seed": args.seed or 0,
                "params": parse_assignments(args.param or []),
            }
        )
    return bots


def procfile_market() -> Simulation:
    sim = Simulation()
    for bot in procfile_bots():
        sim.add_bot(bot["strategy"], bot["account"], bot["symbol"], bot["seed"], bot["params"])
    return sim


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if argv else 300.0
    sim = procfile_market()
    result = sim.run(seconds)
    print(f"{len(result.trades)} trades, {len(result.liquidations)} liquidations")
    for symbol, prices in result.prices.items():
        print(
            f"{symbol}: {len(prices)} trades, first {prices[0]}, last {prices[-1]}, "
            f"min {min(prices)}, max {max(prices)}"
        )
    for liq in result.liquidations:
        print(f"  liquidation {liq.account} {liq.symbol} {liq.side} {liq.qty}@{liq.price}")
    for account, equity in sorted(result.equity.items(), key=lambda kv: -kv[1]):
        print(f"  {account:8} equity {equity:14.2f}")
    for name, stats in result.stats.items():
        interesting = {k: v for k, v in stats.items() if not k.startswith("exec_")}
        print(f"  {name}: {dict(interesting)}")
    for bot in sim.bots:
        if bot.errors:
            print(f"  {bot.name} errors: {bot.errors[:3]}")


if __name__ == "__main__":
    main(sys.argv[1:])
