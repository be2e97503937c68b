"""Operators (PROTOCOL §3.3) in the core: news and shocks, rounds, and the leaderboard.

Every command goes through the scenario ``Driver``, which checks the core's invariants
(money conserved, books and indexes consistent) after each one.
"""

from __future__ import annotations

from typing import Any

from exchange.core import AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.core.operators import shocked_reference
from exchange.protocol.messages import (
    CancelAll,
    Error,
    Leaderboard,
    NewOrder,
    News,
    PublishNews,
    RankAccounts,
    RoundStarted,
    StartRound,
)
from tests.unit.core_helpers import SYMBOL, Driver, fills, last_update, make_exchange, reports


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def board(d: Driver) -> Leaderboard:
    (event,) = of(d.send("", RankAccounts()), Leaderboard)
    return event


def with_system_account() -> Driver:
    """a, b trade; "mm" is a system account (config ``system = true``)."""
    spec = InstrumentSpec(
        symbol=SYMBOL, tick_size=0.01, reference_price=100.0, price_band=0.5, taker_fee=0.001
    )
    accounts = [
        AccountSpec(name="a", cash=10_000.0),
        AccountSpec(name="b", cash=20_000.0),
        AccountSpec(name="mm", cash=1e6, system=True),
    ]
    return Driver(Exchange(CoreConfig(instruments=[spec], accounts=accounts)))


# --------------------------------------------------------------------------- news


def test_news_is_sequenced_and_numbered() -> None:
    d = Driver(make_exchange())
    first = d.send("", PublishNews(headline="Rates on hold", req_id=7))
    second = d.send("", PublishNews(headline="XYZ beats", symbols=[SYMBOL], sentiment=0.8))
    (one,) = of(first, News)
    (two,) = of(second, News)
    assert (one.news_id, two.news_id) == (1, 2)
    assert two.seq == one.seq + 1 and one.req_id == 7
    assert (two.headline, two.symbols, two.sentiment, two.shock) == (
        "XYZ beats",
        [SYMBOL],
        0.8,
        None,
    )
    assert two.reference_prices == {}


def test_a_shock_moves_the_reference_price_half_even_to_the_tick() -> None:
    assert shocked_reference(10_000, 0.05) == 10_500
    assert shocked_reference(10_001, -0.5) == 5_000  # 5000.5 -> 5000 (half to even)
    assert shocked_reference(10_003, -0.5) == 5_002  # 5001.5 -> 5002
    assert shocked_reference(3, -0.99) == 1  # never below one tick
    d = Driver(make_exchange())
    (news,) = of(d.send("", PublishNews(headline="x", symbols=[SYMBOL], shock=0.1)), News)
    assert news.reference_prices == {SYMBOL: 110.0}
    assert d.ex.instruments()[0].reference_price == 110.0
    # Before the first trade the band (±50%) is centred on the new reference: 55 ... 165,
    # so 54 (inside the old 50 ... 150) is out.
    assert reports(d.order("a", "buy", 1, 54.0))[0].reject_reason == "price_band"
    assert reports(d.order("a", "buy", 1, 100.0))[0].exec_type == "new"


def test_news_about_an_unknown_symbol_changes_nothing() -> None:
    d = Driver(make_exchange())
    seq = d.ex.last_seq
    out = d.send("", PublishNews(headline="x", symbols=["NOPE"], shock=0.5))
    assert [type(e) for e in out] == [Error] and "NOPE" in out[0].text
    assert d.ex.last_seq == seq
    out = d.send("", PublishNews(headline="x", symbols=[SYMBOL, SYMBOL]))
    assert [type(e) for e in out] == [Error]


# --------------------------------------------------------------------------- rounds


def test_a_round_resets_every_non_system_account() -> None:
    d = with_system_account()
    d.order("mm", "sell", 50, 101.0)
    d.order("a", "buy", 20, 101.0)  # a long 20, b has a resting order
    d.order("b", "buy", 5, 99.0)
    out = d.send("", StartRound(name="final", cash=50_000.0, req_id="r1"))
    canceled = reports(out)
    assert [(r.account, r.exec_type, r.text) for r in canceled] == [
        ("b", "canceled", "round")
    ]  # the system account's resting sell stays
    (started,) = of(out, RoundStarted)
    assert (started.round, started.name, started.cash, started.req_id) == (
        1,
        "final",
        50_000.0,
        "r1",
    )
    assert out.index(started) > out.index(canceled[0])
    for name in ("a", "b"):
        update = last_update(out, name)
        assert (update.cash, update.equity, update.realized_pnl, update.fees) == (
            50_000.0,
            50_000.0,
            0.0,
            0.0,
        )
        assert update.positions == [] and update.initial_margin == 0.0
    mm = d.ex.account("mm")
    assert mm is not None and mm.holdings[SYMBOL].qty == -20  # left alone
    assert d.ex.round == 1
    d.send("", StartRound(name="next", cash=1_000.0))
    assert d.ex.round == 2


def test_a_round_ends_a_liquidation_in_progress() -> None:
    d = Driver(make_exchange({"weak": 1000.0, "b": 1e7, "c": 1e7}))
    d.order("b", "sell", 100, 100.0)
    d.order("weak", "buy", 100, 100.0)
    d.order("c", "buy", 30, 80.0)
    d.order("c", "sell", 10, 88.0)  # weak is liquidated, 70 lots wait for liquidity
    weak = d.ex.account("weak")
    assert weak is not None and weak.liquidating
    out = d.send("", StartRound(cash=5_000.0))
    assert not last_update(out, "weak").liquidating
    assert reports(d.order("weak", "buy", 1, 80.0))[0].exec_type == "new"


# --------------------------------------------------------------------------- leaderboard


def test_leaderboard_ranks_by_equity_and_leaves_system_accounts_out() -> None:
    d = with_system_account()
    first = board(d)
    assert first.round == 0
    # Before any round: pnl from each account's own starting cash; ties by name.
    assert [(r.account, r.equity, r.pnl) for r in first.rows] == [
        ("b", 20_000.0, 0.0),
        ("a", 10_000.0, 0.0),
    ]
    d.send("", StartRound(cash=10_000.0))
    d.order("b", "sell", 10, 100.0)
    out = d.order("a", "buy", 10, 100.0)  # a pays 1.0 taker fee
    assert len(fills(out)) == 1
    d.order("mm", "buy", 1, 99.0)
    d.order("mm", "sell", 1, 103.0)  # mark 101: a +10, b -10
    rows = {r.account: r for r in board(d).rows}
    assert rows["a"].equity == 10_009.0 and rows["a"].pnl == 9.0
    assert rows["a"].return_pct == 0.09 and rows["a"].trades == 1
    assert rows["b"].equity == 9_990.0 and rows["b"].pnl == -10.0 and rows["b"].trades == 1
    assert "mm" not in rows


def board_rows(d: Driver) -> list[Any]:
    found = of(d.send("", RankAccounts()), Leaderboard)
    return found[0].rows if found else []


def test_leaderboard_is_published_only_when_it_changes() -> None:
    d = Driver(make_exchange())
    board(d)
    assert d.send("", RankAccounts()) == []
    d.order("a", "sell", 1, 100.0)
    d.order("b", "buy", 1, 100.0)
    assert len(board_rows(d)) == 3
    assert d.send("", RankAccounts()) == []
    d.send("", StartRound(cash=100.0))
    assert board(d).round == 1  # same rows or not, a new round is news


def test_drawdown_is_measured_at_each_leaderboard() -> None:
    d = Driver(make_exchange({"a": 10_000.0, "b": 1e7, "c": 1e7}))
    d.send("", StartRound(cash=10_000.0))
    d.order("b", "sell", 100, 100.0)
    d.order("a", "buy", 100, 100.0)
    d.order("c", "buy", 1, 89.0)
    d.order("c", "sell", 1, 91.0)  # mark 90: a -1000
    rows = {r.account: r for r in board(d).rows}
    assert (rows["a"].equity, rows["a"].max_drawdown) == (9_000.0, 1_000.0)
    d.send("c", CancelAll(symbol=SYMBOL))
    d.order("c", "buy", 1, 104.0)
    d.order("c", "sell", 1, 106.0)  # mark 105: a +500, the drop stays the largest
    rows = {r.account: r for r in board(d).rows}
    assert (rows["a"].equity, rows["a"].max_drawdown) == (10_500.0, 1_000.0)


def test_rounds_news_and_statistics_survive_a_snapshot() -> None:
    d = Driver(make_exchange())
    d.send("", PublishNews(headline="x", symbols=[SYMBOL], shock=-0.2))
    d.send("", StartRound(name="r", cash=5_000.0))
    d.order("a", "sell", 3, 80.0)
    d.order("b", "buy", 3, 80.0)
    board(d)
    restored = Exchange.restore(d.ex.config, d.ex.snapshot())
    assert restored.state_hash() == d.ex.state_hash()
    assert restored.round == 1 and restored.instruments()[0].reference_price == 80.0
    before, after = d.ex.account("a"), restored.account("a")
    assert before is not None and after is not None
    assert (after.fills, after.deposits, after.peak_equity) == (
        1,
        before.deposits,
        before.peak_equity,
    )
    again = Driver(restored)
    (news,) = of(again.send("", PublishNews(headline="y")), News)
    assert news.news_id == 2


def test_operator_commands_need_no_account() -> None:
    d = Driver(make_exchange())
    out = d.send("nobody", PublishNews(headline="x"))
    assert of(out, News)
    assert of(d.send("", NewOrder(symbol=SYMBOL, side="buy", qty=1, price=1.0)), Error)


def test_a_shock_before_the_first_trade_fires_the_stops_it_meets() -> None:
    d = Driver(make_exchange())
    d.order("b", "buy", 5, 80.0)  # liquidity for the stop
    d.order("a", "sell", 5, order_type="stop", trigger_price=95.0)
    out = d.send("", PublishNews(headline="bad", symbols=[SYMBOL], shock=-0.1))
    kinds_in_order = [type(e).__name__ for e in out]
    assert kinds_in_order.index("News") < kinds_in_order.index("ExecutionReport")
    fired = [r for r in reports(out, "a")]
    assert fired[0].exec_type == "triggered" and fills(out)[0].qty == 5
