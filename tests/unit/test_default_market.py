"""What ``honcho start`` gives a user: one simulated hour of the Procfile's bots.

The Procfile's bots (their strategies, accounts, seeds and params, on the default config)
run against the matching core on simulated time (``tests/botsim.py``), so the hour takes
seconds and is the same on every run. The default market must be lively (trades in every
symbol the bots make, money changing hands), have the occasional liquidation, and stay
sane: a liquidation sweeping the book must not run the price away (every trade within
±15% of the symbol's reference price).
"""

from __future__ import annotations

from collections import Counter

import pytest

from exchange.protocol.config import load_config
from tests.botsim import SimResult, procfile_bots, procfile_market

HOUR = 3600.0
SANE_BAND = 0.15


@pytest.fixture(scope="module")
def hour() -> SimResult:
    return procfile_market().run(HOUR)


def test_every_symbol_trades(hour: SimResult) -> None:
    symbols = {bot["symbol"] for bot in procfile_bots()}
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
