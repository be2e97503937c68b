"""The Procfile's bots against the matching core on simulated time, for tests: a thin user of
the arena's venue (``bots.arena.venue.Venue``: the core, the gateway's and relay's routing,
1 ms latency, seeded ordering; no sockets, no sleeps).

Unlike an arena round, the accounts are the config's own (with their configured cash) and
each bot's seed is the Procfile's. Used by tests to check what the built-in strategies do to
a market, and to tune their defaults::

    .venv/bin/python -m tests.botsim 600     # ten simulated minutes of the Procfile's bots
"""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.arena.venue import NS, SimBot, Venue
from bots.loader import load_strategy_class
from bots.params import build_config, parse_assignments
from exchange.protocol.config import load_config
from exchange.protocol.messages import Fill, Liquidation
from tests.support import REPO_ROOT

START_NS = 1_700_000_000 * NS


@dataclass
class SimResult:
    trades: list[Fill]
    liquidations: list[Liquidation]
    equity: dict[str, float]
    stats: dict[str, Counter[str]]
    prices: dict[str, list[float]]


class Simulation:
    """The arena's venue on the config's accounts; ``add_bot`` then ``run(seconds)``.
    ``_publish(events)`` sees every event the core emits (override it to record more)."""

    def __init__(self, config_path: str | None = None, latency_ms: float = 1.0) -> None:
        system = load_config(config_path)
        self.venue = Venue(
            system,
            accounts=system.accounts,
            start_ns=START_NS,
            seed=0,
            latency_ms=latency_ms,
            stop_on_error=False,
            on_events=lambda events: self._publish(events),
        )
        self.core = self.venue.core
        self.bots: list[SimBot] = self.venue.bots
        self.fills: list[Fill] = []
        self.liquidations: list[Liquidation] = []
        self.prices: dict[str, list[float]] = {}

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
        name = f"{account}:{strategy}"
        return self.venue.add_bot(name, strategy, cls(config), account, [symbol], seed)

    def _publish(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is Fill:
                self.fills.append(event)
                self.prices.setdefault(event.symbol, []).append(event.price)
            elif kind is Liquidation:
                self.liquidations.append(event)

    def run(self, seconds: float) -> SimResult:
        """Advance ``seconds`` of simulated time."""
        venue = self.venue
        venue.run_until(venue.now_ns + round(seconds * NS))
        equity = {}
        for bot in self.bots:
            account = self.core.account_reply(bot.account)
            if account is None:
                raise KeyError(bot.account)
            equity[bot.account] = account.equity
        return SimResult(
            trades=self.fills,
            liquidations=self.liquidations,
            equity=equity,
            stats={bot.name: bot.driver.stats for bot in self.bots},
            prices=self.prices,
        )


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
        if bot.error_texts:
            print(f"  {bot.name} errors: {bot.error_texts[:3]}")


if __name__ == "__main__":
    main(sys.argv[1:])
