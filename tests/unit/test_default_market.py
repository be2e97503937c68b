"""What ``honcho start`` gives a user: the Procfile's bots on the default config, and one
simulated hour of them.

Every instrument the default config lists is traded by a maker and a taker of the Procfile,
each bot on an account of its own from the config, with sizes suited to the instrument's
price. The Procfile's bots (their strategies, accounts, seeds and params, on the default
config) run against the matching core on simulated time (``tests/botsim.py``), so the hour
takes seconds and is the same on every run. The default market must be lively (trades in
every listed symbol, money changing hands), have the occasional liquidation, and stay sane:
a liquidation sweeping the book must not run the price away (every trade within ±15% of the
symbol's reference price).
"""

from __future__ import annotations

from collections import Counter

import pytest

from bots.loader import load_strategy_class
from bots.params import build_config
from exchange.protocol.config import load_config
from tests.botsim import SimResult, procfile_bots, procfile_market

HOUR = 3600.0
SANE_BAND = 0.15
MAKERS = {"maker", "market_maker"}
"""Strategies that keep quotes in the book."""
TAKERS = {"taker", "random"}
"""Strategies that trade against those quotes all the time (a gambler bets only now and then)."""


def test_every_listed_instrument_has_a_maker_and_a_taker() -> None:
    listed = {spec.symbol for spec in load_config(None).instruments}
    bots = procfile_bots()
    assert {bot["symbol"] for bot in bots} <= listed
    for symbol in sorted(listed):
        strategies = {bot["strategy"] for bot in bots if bot["symbol"] == symbol}
        assert strategies & MAKERS, f"no maker trades {symbol}: {strategies}"
        assert strategies & TAKERS, f"no taker trades {symbol}: {strategies}"


def test_every_bot_has_an_account_of_its_own_in_the_config() -> None:
    keys = {account.name: account.api_key for account in load_config(None).accounts}
    bots = procfile_bots()
    for bot in bots:
        assert bot["account"] in keys, f"{bot['name']}: no account {bot['account']!r}"
        assert bot["api_key"] == keys[bot["account"]], f"{bot['name']}: wrong API key"
    accounts = [bot["account"] for bot in bots]
    assert len(accounts) == len(set(accounts)), "two Procfile bots share an account"


def test_order_sizes_suit_each_instruments_price() -> None:
    """A notional size is worth at least about one lot at the reference price (else every
    order is rounded up to a lot worth far more) and at most the instrument's order limit."""
    instruments = {spec.symbol: spec for spec in load_config(None).instruments}
    for bot in procfile_bots():
        config = build_config(load_strategy_class(bot["strategy"]).Config, bot["params"])
        notional = getattr(config, "order_notional", None)
        if notional is None:
            continue
        spec = instruments[bot["symbol"]]
        lots = notional / spec.reference_price  # as bots.strategies._quoting.lots_for
        assert 0.5 <= lots <= spec.max_order_qty, (bot["name"], bot["symbol"], lots)


@pytest.fixture(scope="module")
def hour() -> SimResult:
    return procfile_market().run(HOUR)


def test_every_symbol_trades(hour: SimResult) -> None:
    symbols = {spec.symbol for spec in load_config(None).instruments}
    per_symbol = Counter(fill.symbol for fill in hour.trades)
    assert symbols == set(per_symbol)
    for symbol in symbols:
        assert per_symbol[symbol] > 1_000, per_symbol


def test_money_changes_hands(hour: SimResult) -> None:
    start = {account.name: account.cash for account in load_config(None).accounts}
    change = {name: equity - start[name] for name, equity in hour.equity.items()}
    winners = [name for name, delta in change.items() if delta > 10_000]
    losers = [name for name, delta in change.items() if delta < -10_000]
    assert len(winners) >= 2 and len(losers) >= 2, change


def test_somebody_is_liquidated(hour: SimResult) -> None:
    assert hour.liquidations
    accounts = {liquidation.account for liquidation in hour.liquidations}
    assert accounts <= {bot["account"] for bot in procfile_bots()}


def test_prices_stay_near_their_reference(hour: SimResult) -> None:
    reference = {spec.symbol: spec.reference_price for spec in load_config(None).instruments}
    for symbol, prices in hour.prices.items():
        low, high = min(prices), max(prices)
        ref = reference[symbol]
        assert ref * (1 - SANE_BAND) <= low and high <= ref * (1 + SANE_BAND), (symbol, low, high)


def test_bots_neither_fail_nor_spam_rejects(hour: SimResult) -> None:
    for name, stats in hour.stats.items():
        assert stats["strategy_errors"] == 0, name
        rejects = sum(n for key, n in stats.items() if key.startswith("reject_"))
        assert rejects <= 20, (name, dict(stats))
