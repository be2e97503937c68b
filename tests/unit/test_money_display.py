"""Money is exact (PROTOCOL.md §2): the core's edge conversions, account messages checked
against exact fractions, and the exporter's rows and the monitor's text of a busy market.

Every amount is kept exact and rounded half-even to 8 decimals once, where it leaves the
core; prices of whole ticks print at the tick's decimals. The expected values here come from
``fractions.Fraction`` (whose ``round`` is half-even), never from float arithmetic.
"""

from __future__ import annotations

import csv
import io
import random
import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from exchange.core import AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.core.accounts import AccountState
from exchange.core.instruments import (
    Instrument,
    div_half_even,
    float_money_to_float,
    half_money_to_float,
    money_ratio_to_float,
    money_to_float,
)
from exchange.protocol.display import decimal_text, price_text, tick_decimals
from exchange.protocol.messages import (
    AccountUpdate,
    ExecutionReport,
    Fill,
    NewOrder,
    Revalue,
)
from exporter.csv_rows import format_rows, performance_row, trade_row
from exporter.report import money
from monitor.view import fmt_money, fmt_price
from tests.botsim import Simulation, procfile_bots
from tests.unit.core_helpers import Driver, last_update, make_exchange, reports

E8 = 10**8


def exact(value: Fraction) -> float:
    """The display value of an exact amount: rounded half-even to 8 decimals."""
    return float(round(value, 8))


def dec(value: float) -> Fraction:
    """The decimal a display float stands for (its shortest repr), exactly."""
    return Fraction(Decimal(repr(value)))


def instrument(**kw: Any) -> Instrument:
    spec: dict[str, Any] = {"symbol": "X", "tick_size": 0.01, "reference_price": 100.0}
    spec.update(kw)
    return Instrument(InstrumentSpec(**spec))


# --------------------------------------------------------------------------- edge functions


def test_integer_half_even_division() -> None:
    cases = {(5, 2): 2, (7, 2): 4, (-5, 2): -2, (-7, 2): -4, (1, 3): 0, (2, 3): 1, (-2, 3): -1}
    for (num, den), want in cases.items():
        assert div_half_even(num, den) == want == round(Fraction(num, den))


def test_money_units_print_as_the_shortest_decimal() -> None:
    assert repr(money_to_float(1_901_640_450_000)) == "19016.4045"
    assert repr(money_to_float(-3_030_000)) == "-0.0303"
    assert money_to_float(1) == 1e-08
    # Beyond 2**53 units too (compiled code would divide as doubles and round twice).
    assert repr(money_to_float(9_999_999_743_251_975)) == "99999997.43251975"
    assert money_to_float(-(2**60) - 1) == float(Fraction(-(2**60) - 1, E8))
    # A float amount (from a half-tick mark) is rounded half-even to a whole unit first.
    assert (float_money_to_float(2.5), float_money_to_float(3.5)) == (2e-08, 4e-08)
    # Half units: ties go to the even unit, both signs.
    assert [half_money_to_float(h) for h in (3, 5, -3, -5, 4)] == [
        2e-08,
        2e-08,
        -2e-08,
        -2e-08,
        2e-08,
    ]
    assert (money_ratio_to_float(2, 3), money_ratio_to_float(-2, 3)) == (1e-08, -1e-08)
    assert repr(money_ratio_to_float(3_802_280_900_001, 200)) == "190.114045"  # .005 units


def test_average_price_of_a_repeating_decimal_and_of_ties() -> None:
    ins = instrument()
    # 1 lot at 100.00 and 2 at 100.01: 100.0066666…
    assert repr(ins.avg_price(10_000 + 2 * 10_001, 3)) == "100.00666667"
    # 127 lots at 100.00 and 1 at 100.01: 100.000078125, a tie at the 9th decimal -> even
    assert repr(ins.avg_price(127 * 10_000 + 10_001, 128)) == "100.00007812"
    # 127 lots at 100.00 and 1 at 100.03: 100.000234375 -> the even neighbour is above
    assert repr(ins.avg_price(127 * 10_000 + 10_003, 128)) == "100.00023438"
    assert repr(ins.avg_price(3 * 10_001, 3)) == "100.01"  # whole ticks: tick decimals
    # The same position's entry price from its cost basis (money units), long and short.
    cost = (127 * 10_000 + 10_003) * ins.tick_value
    assert repr(ins.position_price(cost, 128)) == "100.00023438"
    assert repr(ins.position_price(-cost, -128)) == "100.00023438"
    # A fractional lot size (0.001): 2 lots at 65000.5 and 1 at 65001.0 (65000.666…).
    btc = instrument(symbol="B", tick_size=0.5, lot_size=0.001, reference_price=65000.0)
    cost = (2 * 130_001 + 130_002) * btc.tick_value
    assert repr(btc.position_price(cost, 3)) == "65000.66666667"


def test_half_tick_marks_print_exactly_with_at_most_8_decimals() -> None:
    assert repr(instrument().mark_price(10_000.5)) == "100.005"
    assert repr(instrument().mark_price(10_000.0)) == "100.0"
    assert repr(instrument(tick_size=0.5, reference_price=1.0).mark_price(3.5)) == "1.75"
    assert repr(instrument(tick_size=0.3, reference_price=0.3).mark_price(10.5)) == "3.15"
    fine = instrument(tick_size=1e-08, reference_price=1e-08)
    assert (fine.mark_price(3.5), fine.mark_price(2.5), fine.mark_price(7.0)) == (
        4e-08,
        2e-08,
        7e-08,
    )


def test_equity_with_fees_is_exact() -> None:
    d = Driver(make_exchange({"alice": 19_016.5, "b": 1e7}, taker_fee=0.0005, initial_margin=0.1))
    d.order("b", "sell", 2, 95.50)
    out = d.order("alice", "buy", 2, 95.50)  # fee 0.0005 x 191 = 0.0955
    update = last_update(out, "alice")
    assert repr(update.fees) == "0.0955"
    assert repr(update.cash) == "19016.4045"
    assert repr(update.equity) == "19016.4045"  # flat mark: at the last trade
    assert (repr(update.initial_margin), repr(update.available)) == ("19.1", "18997.3045")
    # A half-tick mark (mid of 95.50 / 95.51): unrealized 2 x 0.005, equity 19016.4145.
    d.order("b", "buy", 1, 95.50)
    d.order("b", "sell", 1, 95.51)
    alice = d.ex.account_reply("alice")
    assert alice is not None
    assert (alice.positions[0].mark_px, repr(alice.equity)) == (95.505, "19016.4145")
    assert repr(alice.unrealized_pnl) == "0.01"


def test_a_noisy_float_sum_is_now_exact() -> None:
    """The case issue 17 showed: margins as float products printed 39252.56250000001."""
    d = Driver(make_exchange({"a": 1e6, "b": 1e6}, reference_price=187.5))
    d.order("b", "sell", 1011, 187.55)
    d.order("b", "sell", 2, 187.58)
    out = d.order("a", "buy", 1013, 187.58)
    (position,) = last_update(out, "a").positions
    assert repr(position.avg_px) == "187.55005923"  # (1011 x 187.55 + 2 x 187.58) / 1013
    check_account(d.ex, "a", last_update(out, "a"))


# --------------------------------------------------------------------------- exact accounts


def expected_numbers(account: AccountState) -> dict[str, Any]:
    """The account message's numbers, computed with exact fractions from the core's state."""
    unrealized = initial = maintenance = Fraction(0)
    positions = {}
    for symbol, holding in account.holdings.items():
        spec = holding.book.instrument.spec
        tick = Fraction(Decimal(str(spec.tick_size)))
        lot = Fraction(Decimal(str(spec.lot_size)))
        im = Fraction(Decimal(str(spec.initial_margin)))
        mm = Fraction(Decimal(str(spec.maintenance_margin)))
        mark = Fraction(holding.book.mark) * tick
        value = holding.qty * mark * lot
        buys = holding.open_buy_value * tick * lot
        sells = holding.open_sell_value * tick * lot
        initial += max(abs(value + buys), abs(value - sells)) * im
        cost = Fraction(holding.cost, E8)
        if holding.qty:
            unrealized += value - cost
            maintenance += abs(value) * mm
        if holding.qty or holding.realized:
            positions[symbol] = (
                holding.qty,
                exact(cost / (holding.qty * lot)) if holding.qty else 0.0,
                exact(mark),
                exact(Fraction(holding.realized, E8)),
                exact(value - cost) if holding.qty else 0.0,
            )
    equity = Fraction(account.cash, E8) + unrealized
    return {
        "cash": exact(Fraction(account.cash, E8)),
        "equity": exact(equity),
        "realized_pnl": exact(Fraction(account.realized, E8)),
        "unrealized_pnl": exact(unrealized),
        "fees": exact(Fraction(account.fees, E8)),
        "initial_margin": exact(initial),
        "maintenance_margin": exact(maintenance),
        "available": exact(equity - initial),
        "positions": positions,
    }


def check_account(ex: Exchange, name: str, update: AccountUpdate) -> None:
    state = next(a for a in ex.accounts() if a.name == name)
    want = expected_numbers(state)
    positions = want.pop("positions")
    for field, value in want.items():
        got = getattr(update, field)
        assert repr(got) == repr(value), (name, field, got, value)
    got_positions = {
        p.symbol: (p.qty, p.avg_px, p.mark_px, p.realized_pnl, p.unrealized_pnl)
        for p in update.positions
    }
    assert got_positions == positions


LIMITS: dict[str, Any] = {"price_band": 0.5, "max_order_qty": 10**6, "max_position": 10**7}
SPECS: list[dict[str, Any]] = [
    # a stock: tick 0.01, maker rebate, taker fee
    {"symbol": "STK", "tick_size": 0.01, "reference_price": 190.0, "maker_fee": -0.0001,
     "taker_fee": 0.0003, "initial_margin": 0.1, "maintenance_margin": 0.05},
    # a perpetual with a fractional lot (0.001) and a 0.5 tick
    {"symbol": "PERP", "tick_size": 0.5, "lot_size": 0.001, "reference_price": 65000.0,
     "taker_fee": 0.0005, "initial_margin": 0.05, "maintenance_margin": 0.025},
    # a penny asset whose margin factors are not whole money units per tick x lot
    {"symbol": "PENNY", "tick_size": 0.000001, "reference_price": 0.5, "taker_fee": 0.0007,
     "initial_margin": 0.123, "maintenance_margin": 0.0615},
]  # fmt: skip


def test_random_flow_publishes_exactly_rounded_numbers() -> None:
    """Account updates and execution reports of a random order flow equal the exact values
    (fractions) rounded half-even to 8 decimals: every field, after every command."""
    rng = random.Random(17)
    names = ["a", "b", "c", "d"]
    ex = Exchange(
        CoreConfig(
            instruments=[InstrumentSpec(**{**LIMITS, **spec}) for spec in SPECS],
            accounts=[AccountSpec(name=n, cash=1e8, max_open_orders=500) for n in names],
        )
    )
    notional: dict[int, Fraction] = {}
    checked_updates = checked_averages = 0
    ts = 1_000
    for step in range(1500):
        ts += 1
        if step % 50 == 49:
            out = ex.submit("", Revalue(), ts)
        else:
            spec = rng.choice(SPECS)
            tick = Decimal(str(spec["tick_size"]))
            ticks = round(Decimal(str(spec["reference_price"])) / tick) + rng.randint(-6, 6)
            market = rng.random() < 0.15
            command = NewOrder(
                symbol=str(spec["symbol"]),
                side=rng.choice(["buy", "sell"]),
                qty=rng.randint(1, 3000),
                order_type="market" if market else "limit",
                price=None if market else float(ticks * tick),
            )
            out = ex.submit(rng.choice(names), command, ts)
        for event in out:
            if isinstance(event, AccountUpdate):
                check_account(ex, event.account, event)
                checked_updates += 1
            elif isinstance(event, ExecutionReport) and event.exec_type == "trade":
                assert event.order_id is not None and event.last_px is not None
                assert event.last_qty is not None
                total = notional.get(event.order_id, Fraction(0))
                total += dec(event.last_px) * event.last_qty
                notional[event.order_id] = total
                assert repr(event.avg_px) == repr(exact(total / event.cum_qty))
                checked_averages += 1
            elif isinstance(event, Fill):
                for fee in (event.buy_fee, event.sell_fee):
                    assert fee == exact(dec(fee))
    assert checked_updates > 1000 and checked_averages > 500


# --------------------------------------------------------------------------- printing


def test_decimal_text_rounds_where_it_prints() -> None:
    assert decimal_text(19016.404500000004) == "19016.4045"
    assert decimal_text(0.1 + 0.2) == "0.3"
    assert decimal_text(1e-08) == "0.00000001"
    assert decimal_text(4e-09) == "0.0"  # rounds to zero: never "-0.0" or 4e-09
    assert decimal_text(-4e-09) == "0.0"
    assert (decimal_text(0.125, 2), decimal_text(0.375, 2)) == ("0.12", "0.38")  # exact ties
    assert decimal_text(187.5667260138477) == "187.56672601"
    assert decimal_text(1e16) == "10000000000000000.0"
    assert decimal_text(-1234567.5, grouping=True) == "-1,234,567.5"
    assert decimal_text(12, grouping=True) == "12"
    assert (tick_decimals(0.01), tick_decimals(0.5), tick_decimals(5.0)) == (2, 1, 0)
    assert tick_decimals(1e-10) == 8
    assert price_text(190.1, 0.01) == "190.10"
    assert price_text(190.105, 0.01) == "190.105"  # a half-tick mid keeps its digit
    assert price_text(100.1 - 99.9, 0.01) == "0.20"  # a float difference, rounded
    assert price_text(65000.25, 0.5) == "65000.25"
    assert price_text(101.0, 1.0) == "101"


def test_report_and_monitor_print_money_like_the_files() -> None:
    assert money(0.1 + 0.2) == "0.3"
    assert money(1505.0) == "1,505.0"
    assert fmt_money(19016.404500000004) == "19,016.4045"
    assert fmt_money(-10.0) == "-10.0"
    assert fmt_price(100.005, 0.01) == "100.005"
    assert fmt_price(190.1, 0.01) == "190.10"


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def assert_exact_number(token: str, max_decimals: int = 8) -> None:
    """``token`` is the shortest decimal of its float, has no exponent and at most
    ``max_decimals`` decimals (so it is what rounding half-even to 8 decimals printed)."""
    assert "e" not in token.lower(), token
    decimals = len(token.partition(".")[2])
    assert decimals <= max_decimals, token
    assert Decimal(token) == Decimal(repr(round(float(token), 8))), token
    assert not re.search(r"\.\d{9,}", token), token


class RecordingSimulation(Simulation):
    """The bot simulator, keeping every account update the core publishes."""

    def __init__(self) -> None:
        super().__init__()
        self.updates: list[AccountUpdate] = []

    def _publish(self, events: list[Any]) -> None:
        self.updates.extend(e for e in events if isinstance(e, AccountUpdate))
        super()._publish(events)


def test_busy_market_csv_rows_have_no_float_noise() -> None:
    """The Procfile's bots trade for two simulated minutes; every number the exporter would
    write to trades.csv and performance.csv (each avg_px in ``positions`` included) is an
    exactly rounded decimal: ≤ 8 decimals, prices at their tick's decimals."""
    sim = RecordingSimulation()
    for bot in procfile_bots():
        sim.add_bot(bot["strategy"], bot["account"], bot["symbol"], bot["seed"], bot["params"])
    result = sim.run(120.0)
    assert len(result.trades) > 300 and len(sim.updates) > 1000
    ticks = {info.symbol: tick_decimals(info.tick_size) for info in sim.core.instruments()}
    trades = list(csv.reader(io.StringIO(format_rows(trade_row(f) for f in result.trades))))
    for row in trades:
        assert_exact_number(row[5], ticks[row[4]])  # price: at most the tick's decimals
        for field in (row[12], row[13]):  # fees
            assert_exact_number(field)
    performance = list(
        csv.reader(io.StringIO(format_rows(performance_row(u) for u in sim.updates)))
    )
    averages = 0
    for row in performance:
        for field in row[4:11]:
            assert_exact_number(field)
        for position in filter(None, row[11].split(";")):
            symbol, _, rest = position.partition(":")
            qty, _, avg_px = rest.partition("@")
            assert symbol in ticks and int(qty) != 0
            assert_exact_number(avg_px)
            averages += len(avg_px.partition(".")[2]) > ticks[symbol]
    assert averages > 100  # the rounding path was exercised, not only whole-tick averages
    # And the engine's own numbers are already exact: the rows print them unchanged.
    for update in sim.updates[:200]:
        for value in (update.cash, update.equity, update.initial_margin, update.available):
            assert value == exact(dec(value))


@pytest.mark.parametrize("account", ["a", "b"])
def test_order_reports_show_exact_average_prices(account: str) -> None:
    d = Driver(make_exchange())
    other = "b" if account == "a" else "a"
    d.order(other, "sell", 1, 100.0)
    d.order(other, "sell", 2, 100.01)
    out = d.order(account, "buy", 3, 100.01)
    final = reports(out, account)[-1]
    assert (final.status, repr(final.avg_px)) == ("filled", "100.00666667")
