"""The arena's LOBSTER background (bots/arena/lobster.py): real NASDAQ flow replayed under the
``lobster…`` accounts, bots trading with it, and the rules for orders a bot took part of.

Real data is read from ``../shared/data/lobster`` (never copied into the repository); the
rule tests use a few synthetic rows in a temporary file."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from bots.arena import lobster
from bots.arena.cli import main
from bots.arena.config import load_arena
from bots.arena.rounds import run_round
from bots.arena.venue import Venue
from exchange.protocol.config import AccountSpec, load_config
from tests.support import SHARED_DATA
from tests.unit.test_arena import Buyer

AAPL = SHARED_DATA / "lobster" / "AAPL_2012-06-21_34200000_57600000_message_10.csv"

EXCHANGE = """
[[instruments]]
symbol = "{symbol}"
tick_size = 0.01
reference_price = {price}
max_order_qty = 100000
max_position = 100000000
price_band = 0.0
"""

needs_data = pytest.mark.skipif(not AAPL.exists(), reason="no LOBSTER sample in ../shared/data")


def exchange_file(tmp_path: Path, symbol: str, price: float) -> Path:
    path = tmp_path / f"{symbol}.toml"
    path.write_text(EXCHANGE.format(symbol=symbol, price=price))
    return path


@needs_data
def test_replayed_alone_the_book_follows_the_files_best_prices(tmp_path: Path) -> None:
    data = lobster.LobsterFile.read(AAPL)
    assert data.seed_levels and len(data.best_bids) == len(data.times)
    replay = lobster.LobsterReplay(data)
    system = load_config(exchange_file(tmp_path, "AAPL", 585.0))
    venue = Venue(
        system, accounts=lobster.accounts(), start_ns=data.start_ns, seed=1, background=replay
    )
    book = venue.core.book("AAPL")
    assert book is not None
    mismatches = []
    step = replay.step

    def checked(submit: Any) -> None:
        i = replay._index
        step(submit)
        bids, asks = book.depth(1)
        best = (bids[0][0] if bids else 0, asks[0][0] if asks else 0)
        if best != (data.best_bids[i] // 100, data.best_asks[i] // 100):
            mismatches.append(i)

    replay.step = checked  # type: ignore[method-assign]
    venue.run_until(data.times[-1])
    assert replay.counts["messages"] == len(data.times) - 1  # row 0 seeds the book
    assert replay.counts["rejected"] == 0
    assert mismatches == []


@needs_data
def test_bots_trade_with_the_replayed_flow(tmp_path: Path) -> None:
    exchange = exchange_file(tmp_path, "AAPL", 585.0)
    arena = tmp_path / "arena.toml"
    arena.write_text(
        f'[arena]\nconfig = "{exchange.name}"\nrounds = 2\nseconds = 40\n'
        f'market = "lobster:{AAPL.as_posix()}"\n\n'
        '[[bots]]\nname = "mm"\nstrategy = "market_maker"\nsymbol = "AAPL"\n'
        "params = { levels = 2 }\n\n"
        '[[bots]]\nname = "taker"\nstrategy = "taker"\nsymbol = "AAPL"\n'
    )
    out = tmp_path / "out"
    assert main([str(arena), "--out", str(out)]) == 0
    trades = list(csv.DictReader(io.StringIO((out / "round-1" / "trades.csv").read_text())))
    pairs = {(t["buy_account"], t["sell_account"]) for t in trades}
    with_flow = [
        p for p in pairs if {"mm", "taker"} & set(p) and any(a.startswith("lobster") for a in p)
    ]
    assert with_flow, pairs
    data = lobster.LobsterFile.read(AAPL)
    assert min(int(t["ts_ns"]) for t in trades) >= data.start_ns
    assert trades[0]["ts"].startswith("2012-06-21T13:30:")  # 09:30 in New York
    board = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert {row["bot"] for row in board} == {"mm", "taker"}  # lobster accounts are not ranked
    performance = (out / "round-2" / "performance.csv").read_text()
    assert "lobster" not in performance
    config = load_arena(arena)
    first = run_round(config, 1, data)
    again = run_round(config, 1, data)
    assert [f.seq for f in first.recorder.fills] == [f.seq for f in again.recorder.fills]
    assert first.background["messages"] == again.background["messages"] > 100


ROWS = [
    "34200.000000000,1,7,10,1000000,-1",  # lobster rests 10 @ 100.00 (sell)
    "34200.500000000,2,7,8,1000000,-1",  # cancel 8 of it: the bot took 6, 4 are left: clipped
    "34200.600000000,3,7,10,1000000,-1",  # delete it: no longer live: skipped
    "34200.700000000,1,8,5,999000,1",  # lobster rests 5 @ 99.90 (buy)
    "34200.800000000,4,8,2,999000,1",  # an execution of it: an IOC sell 2 @ 99.90
    "34200.900000000,5,0,3,999500,1",  # a hidden execution: skipped
]


def test_a_bot_taking_replayed_liquidity_clips_and_skips_later_cancels(tmp_path: Path) -> None:
    path = tmp_path / "TEST_2012-06-21_34200000_57600000_message_1.csv"
    path.write_text("\n".join(ROWS) + "\n")
    data = lobster.LobsterFile.read(path)
    replay = lobster.LobsterReplay(data)
    system = load_config(exchange_file(tmp_path, "TEST", 100.0))
    accounts = [AccountSpec(name="bot", cash=100_000.0), *lobster.accounts()]
    venue = Venue(system, accounts=accounts, start_ns=data.start_ns, seed=1, background=replay)
    fills: list[Any] = []
    venue.on_events = lambda events: fills.extend(e for e in events if type(e).__name__ == "Fill")
    buyer = Buyer()
    buyer.qty = 6
    venue.add_bot("bot", "buyer", buyer, "bot", ["TEST"], seed=1)
    venue.run_until(data.start_ns + 2 * 10**9)
    assert [(f.buy_account, f.sell_account, f.qty, f.price) for f in fills] == [
        ("bot", "lobster", 6, 100.0),
        ("lobster", "lobster-taker", 2, 99.9),
    ]
    assert replay.counts == {
        "messages": 6,
        "replayed": 4,
        "skipped": 2,
        "clipped": 1,
        "rejected": 0,
        "stale": 0,
        "revealed": 0,
    }
    assert venue.core.open_orders("lobster")[0].leaves_qty == 3
