"""The monitor's pure reducer and text views: no terminal, no sockets."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.protocol.messages import (
    AccountUpdate,
    BookSnapshot,
    BookUpdate,
    Error,
    InstrumentInfo,
    Instruments,
    Liquidation,
    Position,
    Trade,
)
from monitor import view
from monitor.state import (
    Connected,
    Connecting,
    Disconnected,
    MonitorState,
    SelectPanel,
    SelectSymbol,
    reduce,
    take_resync,
)


def info(symbol: str, tick: float = 0.01) -> InstrumentInfo:
    return InstrumentInfo(
        symbol=symbol, tick_size=tick, lot_size=1.0, reference_price=100.0, initial_margin=0.1,
        maintenance_margin=0.05, max_order_qty=100, max_position=1000, price_band=0.1,
        maker_fee=0.0, taker_fee=0.0,
    )  # fmt: skip


def snap(symbol: str, seq: int, bids: Any, asks: Any) -> BookSnapshot:
    return BookSnapshot(symbol=symbol, seq=seq, ts=seq, bids=list(bids), asks=list(asks))


def upd(symbol: str, seq: int, prev: int, bids: Any = (), asks: Any = ()) -> BookUpdate:
    return BookUpdate(
        symbol=symbol, seq=seq, prev_seq=prev, ts=seq, bids=list(bids), asks=list(asks)
    )


def account(name: str, equity: float, im: float = 0.0, qty: int = 0, **kw: Any) -> AccountUpdate:
    positions = [Position("AAPL", qty, 100.0, 100.0, 0.0, 0.0)] if qty else []
    return AccountUpdate(
        account=name, cash=equity, equity=equity, realized_pnl=0.0, unrealized_pnl=0.0,
        fees=0.0, initial_margin=im, maintenance_margin=im / 2, available=equity - im,
        positions=positions, seq=kw.pop("seq", 1), **kw,
    )  # fmt: skip


def test_snapshot_then_updates_rebuild_the_book_and_a_gap_asks_for_resync() -> None:
    state = MonitorState()
    reduce(state, snap("AAPL", 10, [(100.0, 5), (99.0, 1)], [(101.0, 2)]))
    reduce(state, upd("AAPL", 11, 10, bids=[(100.0, 0), (99.5, 3)], asks=[(102.0, 4)]))
    bids, asks = state.book("AAPL").levels()
    assert bids == [(99.5, 3), (99.0, 1)] and asks == [(101.0, 2), (102.0, 4)]
    reduce(state, upd("AAPL", 14, 13, bids=[(98.0, 1)]))
    assert not state.book("AAPL").synced
    assert take_resync(state) == ["AAPL"] and take_resync(state) == []
    reduce(state, upd("AAPL", 15, 14, bids=[(97.0, 1)]))
    assert (97.0, 1) not in state.book("AAPL").levels()[0]
    reduce(state, snap("AAPL", 20, [(96.0, 1)], []))
    assert state.book("AAPL").synced and state.book("AAPL").levels() == ([(96.0, 1)], [])


@st.composite
def book_histories(draw: st.DrawFn) -> list[tuple[dict[float, int], dict[float, int]]]:
    prices = st.integers(min_value=1, max_value=40).map(lambda t: t * 0.25)
    side = st.dictionaries(prices, st.integers(min_value=1, max_value=50), max_size=8)
    return draw(st.lists(st.tuples(side, side), min_size=1, max_size=12))


def diff(old: dict[float, int], new: dict[float, int]) -> list[tuple[float, int]]:
    changes = [(p, q) for p, q in new.items() if old.get(p) != q]
    return changes + [(p, 0) for p in old if p not in new]


@settings(max_examples=150, deadline=None)
@given(book_histories(), st.integers(min_value=1, max_value=1000))
def test_any_update_chain_reconstructs_the_final_book(
    history: list[tuple[dict[float, int], dict[float, int]]], start: int
) -> None:
    state = MonitorState(depth=50)
    (bids0, asks0), *rest = history
    reduce(state, snap("S", start, bids0.items(), asks0.items()))
    seq, prev = start, (bids0, asks0)
    for bids, asks in rest:
        reduce(state, upd("S", seq + 7, seq, diff(prev[0], bids), diff(prev[1], asks)))
        seq, prev = seq + 7, (bids, asks)
    got_bids, got_asks = state.book("S").levels()
    assert got_bids == sorted(prev[0].items(), reverse=True)
    assert got_asks == sorted(prev[1].items())
    assert state.book("S").synced and state.book("S").seq == seq


@settings(max_examples=100, deadline=None)
@given(book_histories(), st.data())
def test_a_dropped_update_is_always_detected(
    history: list[tuple[dict[float, int], dict[float, int]]], data: st.DataObject
) -> None:
    updates = [upd("S", 10 + i, 9 + i) for i in range(1, len(history) + 2)]
    dropped = data.draw(st.integers(min_value=0, max_value=len(updates) - 2))
    state = MonitorState()
    reduce(state, snap("S", 10, [], []))
    for i, update in enumerate(updates):
        if i != dropped:
            reduce(state, update)
    assert not state.book("S").synced
    assert take_resync(state) == ["S"]


def test_trades_feed_the_tape_prices_and_volume_newest_first() -> None:
    state = MonitorState()
    for i, price in enumerate([100.0, 101.0, 99.0]):
        trade = Trade(symbol="AAPL", trade_id=i, price=price, qty=2, aggressor="buy", ts=i, seq=i)
        reduce(state, trade)
    assert [t.price for t in state.tape] == [99.0, 101.0, 100.0]
    assert list(state.prices["AAPL"]) == [100.0, 101.0, 99.0]
    assert state.volumes["AAPL"] == 6
    assert state.selected == "AAPL"


def test_accounts_rank_by_equity_with_margin_use_and_liquidating_flag() -> None:
    state = MonitorState()
    reduce(state, account("poor", 1_000.0, im=900.0, qty=-3, liquidating=True))
    reduce(state, account("rich", 50_000.0, im=5_000.0, qty=10))
    reduce(state, account("rich", 1.0, seq=0))  # older: ignored
    assert [a.account for a in view.ranked_accounts(state)] == ["rich", "poor"]
    text = view.accounts(state).plain
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["1", "rich", "50,000.0"]  # shortest decimal, grouped
    assert "10%" in lines[1] and "AAPL:+10" in lines[1]
    assert "90%" in lines[2] and "LIQUIDATING" in lines[2]


def test_connection_events_drive_the_indicator() -> None:
    state = MonitorState()
    reduce(state, Connecting("ws://x", 0))
    assert view.status_line(state).plain.startswith(" CONNECTING ")
    reduce(state, Connected("ws://x"))
    assert view.status_line(state).plain.startswith(" CONNECTED ")
    reduce(state, snap("AAPL", 1, [(1.0, 1)], []))
    reduce(state, Disconnected("refused"))
    assert view.status_line(state).plain.startswith(" DISCONNECTED ")
    assert not state.book("AAPL").synced and state.disconnects == 1
    reduce(state, Connecting("ws://x", 3))
    assert "RECONNECTING  attempt 3" in view.status_line(state).plain


def test_symbol_and_panel_selection() -> None:
    state = MonitorState()
    reduce(state, Instruments(instruments=[info("A"), info("B"), info("C")]))
    assert state.selected == "A"
    reduce(state, SelectSymbol(step=-1))
    assert state.selected == "C"
    reduce(state, SelectSymbol(symbol="B"))
    reduce(state, SelectSymbol(symbol="nope"))
    assert state.selected == "B"
    reduce(state, SelectPanel("liquidations"))
    assert state.panel == "liquidations"


def test_forbidden_token_is_shown() -> None:
    state = MonitorState()
    reduce(state, Error(code="forbidden", text="bad token"))
    assert "refused the token" in view.accounts(state).plain


def test_ladder_text_shows_depth_cumulative_size_and_spread() -> None:
    state = MonitorState()
    reduce(state, Instruments(instruments=[info("AAPL")]))
    reduce(state, snap("AAPL", 5, [(99.9, 10), (99.8, 5)], [(100.1, 7), (100.2, 3)]))
    lines = view.ladder(state, depth=5).plain.splitlines()
    assert lines[0] == "AAPL book"
    assert lines[2].split() == ["ASK", "100.20", "3", "10"]
    assert lines[3].split() == ["ASK", "100.10", "7", "7"]
    assert "spread 0.20 (20.0 bps)  mid 100.00" in lines[4]
    assert lines[5].split() == ["BID", "99.90", "10", "10"]
    assert lines[6].split() == ["BID", "99.80", "5", "15"]


def test_liquidation_log_newest_first() -> None:
    state = MonitorState()
    for i, who in enumerate(["a", "b"]):
        event = Liquidation(
            account=who, symbol="X", side="sell", qty=3, price=10.0, ts=i * 10**9, seq=i
        )
        reduce(state, event)
    lines = view.liquidations(state).plain.splitlines()
    assert lines[1].split()[1] == "b" and lines[2].split()[1] == "a"
    assert lines[1].startswith("00:00:01.000")
