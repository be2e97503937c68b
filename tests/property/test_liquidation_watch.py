"""The margin watch never lets an account stay below maintenance margin unnoticed.

Leveraged accounts trade two symbols while market makers move the marks around; after every
command, every account that is not being liquidated must have equity >= maintenance margin
(checked exactly, independently of the watch's bands), and money must be conserved.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core import AccountSpec, CoreConfig, Exchange, InstrumentSpec
from exchange.protocol.messages import CancelAll, NewOrder

SYMBOLS = ("AAA", "BBB")
TRADERS = ("t1", "t2", "t3")
MAKERS = ("m1", "m2")


def make_core() -> Exchange:
    return Exchange(
        CoreConfig(
            instruments=[
                InstrumentSpec(
                    symbol=s,
                    tick_size=0.5,
                    reference_price=100.0,
                    initial_margin=0.2,
                    maintenance_margin=0.1,
                    price_band=0.0,
                    taker_fee=0.001,
                    maker_fee=-0.0002,
                )
                for s in SYMBOLS
            ],
            accounts=[AccountSpec(name=t, cash=2_000.0) for t in TRADERS]
            + [AccountSpec(name=m, cash=10_000_000.0) for m in MAKERS],
            insurance_fund_cash=100_000.0,
        )
    )


order = st.tuples(
    st.sampled_from(TRADERS + MAKERS),
    st.sampled_from(SYMBOLS),
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 60),
    st.integers(120, 280),  # price in half-dollar ticks: 60.0 .. 140.0
    st.sampled_from(["gtc", "ioc"]),
)
step = st.one_of(
    order.map(lambda o: ("order", o)),
    st.tuples(st.sampled_from(MAKERS + TRADERS), st.sampled_from(SYMBOLS)).map(
        lambda o: ("cancel_all", o)
    ),
)


def conserved_total(core: Exchange) -> int:
    total = core.fee_pool
    for account in core.accounts():
        total += account.cash - sum(h.cost for h in account.holdings.values())
    return total


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(step, min_size=20, max_size=120))
def test_no_account_is_left_below_maintenance(steps: list) -> None:
    core = make_core()
    start = conserved_total(core)
    for ts, (kind, args) in enumerate(steps, start=1):
        if kind == "order":
            account, symbol, side, qty, half_ticks, tif = args
            command = NewOrder(symbol=symbol, side=side, qty=qty, price=half_ticks / 2, tif=tif)
        else:
            account, symbol = args
            command = CancelAll(symbol=symbol)
        core.submit(account, command, ts)
        for state in core.accounts():
            if state is core.insurance or state.liquidating:
                continue
            assert state.cushion() >= -1e-6, (state.name, state.cushion())
        assert conserved_total(core) == start
        for symbol in SYMBOLS:
            assert sum(a.holdings[symbol].qty for a in core.accounts() if symbol in a.holdings) == 0
