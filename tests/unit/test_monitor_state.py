"""The monitor's pure reducer and text views: no terminal, no sockets."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.protocol.messages import (
    AccountUpdate,
    AuctionInfo,
    BookSnapshot,
    BookUpdate,
    Error,
    InstrumentInfo,
    Instruments,
    Leaderboard,
    LeaderboardRow,
    Liquidation,
    MarketStatus,
    News,
    Position,
    RoundStarted,
    Trade,
)
from monitor import view
from monitor.feed import channels
from monitor.state import (
    NEWS_LOG,
    PANELS,
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


def news(seq: int, headline: str = "AAPL beats", **kw: Any) -> News:
    fields: dict[str, Any] = {
        "news_id": seq,
        "headline": headline,
        "body": None,
        "symbols": ["AAPL"],
        "sentiment": 0.9,
        "shock": None,
        "ts": seq * 10**9,
        "seq": seq,
    }
    fields.update(kw)
    return News(**fields)


def board_row(name: str, equity: float, pnl: float, **kw: Any) -> LeaderboardRow:
    fields: dict[str, Any] = {
        "return_pct": pnl / 1000.0,
        "max_drawdown": 0.0,
        "trades": 0,
        "liquidations": 0,
    }
    fields.update(kw)
    return LeaderboardRow(account=name, equity=equity, pnl=pnl, **fields)


def board(round_: int, ts: int, *rows: LeaderboardRow, seq: int = 1) -> Leaderboard:
    return Leaderboard(round=round_, ts=ts, rows=list(rows), seq=seq)


def test_news_newest_first_once_each_and_capped() -> None:
    state = MonitorState()
    assert view.headline(state).plain == "news: none yet"
    assert "no news yet" in view.news(state).plain
    reduce(state, news(1, "Rates unchanged", symbols=[], sentiment=0.0))
    reduce(state, news(2, "AAPL misses\nbadly", symbols=["AAPL", "MSFT"], sentiment=-0.8))
    reduce(state, news(2, "AAPL misses\nbadly"))  # the same item again: kept once
    reduce(state, news(3, "BTC rallies", symbols=["BTC-PERP"], sentiment=0.5, shock=0.05))
    assert [n.seq for n in state.news] == [3, 2, 1]
    assert state.last_seq == 3 and state.messages == 4
    lines = view.news(state).plain.splitlines()
    assert lines[0].split() == ["time", "sent.", "symbols", "headline"]
    assert lines[1] == "00:00:03.000 +0.50 BTC-PERP     BTC rallies [shock +5%]"
    assert lines[2] == "00:00:02.000 -0.80 AAPL,MSFT    AAPL misses badly"  # one row
    assert lines[3] == "00:00:01.000 +0.00 -            Rates unchanged"
    assert view.headline(state).plain == "NEWS " + lines[1]
    assert view.sentiment_style(0.5) == "green" and view.sentiment_style(-0.8) == "red"
    assert view.sentiment_style(0.05) == ""
    assert [view.percent(v) for v in (2.504, -0.999, -0.002, 0.0)] == [
        "+2.50%", "-1.00%", "+0.00%", "+0.00%"
    ]  # fmt: skip
    for seq in range(4, NEWS_LOG + 50):
        reduce(state, news(seq))
    assert len(state.news) == NEWS_LOG and state.news[0].seq == NEWS_LOG + 49
    assert len(view.news(state, rows=5).plain.splitlines()) == 6


def test_leaderboard_follows_the_round_and_ignores_a_stale_repeat() -> None:
    state = MonitorState()
    assert "leaderboard: none yet" in view.leaderboard(state).plain
    reduce(state, board(0, 10**9, board_row("alice", 100_500.0, 500.0)))
    assert view.leaderboard(state).plain.startswith("round 0 (before the first round")
    reduce(state, RoundStarted(round=1, name="heat 1", cash=50_000.0, ts=2 * 10**9, seq=5))
    assert state.round == 1
    # The relay's once-a-second repeat of the old board, already on its way: ignored.
    reduce(state, board(0, 3 * 10**9, board_row("alice", 100_900.0, 900.0)))
    assert state.leaderboard is not None and state.leaderboard.round == 0
    assert state.leaderboard.ts == 10**9
    reduce(
        state,
        board(
            1,
            4 * 10**9,
            board_row("bob", 51_250.5, 1_250.5, return_pct=2.501, max_drawdown=80.0, trades=12),
            board_row("alice", 49_000.0, -1_000.0, return_pct=-2.0, trades=3, liquidations=1),
            seq=9,
        ),
    )
    text = view.leaderboard(state).plain.splitlines()
    assert text[0] == "round 1 'heat 1', cash 50,000.0  ·  00:00:04.000  ·  top 2 of 2"
    assert text[1].split() == [
        "#", "account", "equity", "pnl", "return", "max", "dd", "trades", "liq"
    ]  # fmt: skip
    assert text[2].split() == ["1", "bob", "51,250.5", "1,250.5", "+2.50%", "80.0", "12", "0"]
    assert text[3].split() == ["2", "alice", "49,000.0", "-1,000.0", "-2.00%", "0.0", "3", "1"]
    assert len(view.leaderboard(state, rows=1).plain.splitlines()) == 3
    assert "top 1 of 2" in view.leaderboard(state, rows=1).plain
    # A relay that comes back on another history: its board counts, whatever its round.
    reduce(state, Disconnected("gone"))
    reduce(state, board(0, 5 * 10**9, board_row("carol", 1.0, 0.0)))
    assert state.leaderboard is not None and state.leaderboard.rows[0].account == "carol"


def test_rounds_remembered_are_bounded_and_an_unknown_round_has_a_plain_title() -> None:
    state = MonitorState()
    for n in range(1, 40):
        reduce(state, RoundStarted(round=n, name=f"r{n}", cash=1.0, ts=n, seq=n))
    assert len(state.rounds) <= 16 and max(state.rounds) == 39
    reduce(state, board(40, 1))
    assert view.leaderboard(state).plain.startswith("round 40  ·")
    assert "no accounts" in view.leaderboard(state).plain


def test_the_feed_asks_for_news_and_rounds_and_accounts_only_with_a_token() -> None:
    assert channels(None) == [
        "instruments", "book.*", "trades.*", "liquidations", "status", "news", "rounds"
    ]  # fmt: skip
    assert channels("t")[-1] == "accounts"
    assert {"status", "news", "rounds"} <= set(channels("t"))
    state = MonitorState()
    for panel in PANELS:
        reduce(state, SelectPanel(panel))
        assert state.panel == panel


NOON = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z


def test_market_status_newest_seq_wins_and_the_auction_goes_with_the_open() -> None:
    state = MonitorState()
    halted = msgspec.structs.replace(info("AAPL"), status="halted")
    reduce(state, Instruments(instruments=[halted, info("MSFT")]))
    assert state.symbol_status("AAPL") == "halted" and state.symbol_status("MSFT") == "open"
    reduce(state, MarketStatus("AAPL", "auction", "schedule", NOON + 10**10, NOON, 20))
    reduce(state, AuctionInfo("AAPL", 100.5, 30, -4, NOON + 10**10, NOON + 1, 21))
    reduce(state, MarketStatus("AAPL", "halted", "admin", None, NOON - 1, 19))  # older
    assert state.symbol_status("AAPL") == "auction" and state.auctions["AAPL"].seq == 21
    reduce(state, MarketStatus("AAPL", "open", "schedule", None, NOON + 10**10, 30))
    assert state.symbol_status("AAPL") == "open" and state.auctions == {}
    # After a reconnect the relay's statuses count whatever their seq (another history).
    reduce(state, Disconnected("gone"))
    reduce(state, MarketStatus("AAPL", "halted", "admin", None, NOON, 3))
    assert state.symbol_status("AAPL") == "halted"
    reduce(state, MarketStatus("AAPL", "open", "admin", None, NOON, 2))
    assert state.symbol_status("AAPL") == "halted"  # fresh again: older ones lose


def test_status_shows_in_the_status_line_and_the_book_header() -> None:
    state = MonitorState()
    reduce(state, Instruments(instruments=[info("AAPL"), info("MSFT", tick=0.5)]))
    reduce(state, snap("AAPL", 5, [(99.9, 10)], [(100.1, 7)]))
    reduce(state, snap("MSFT", 5, [(99.5, 10)], [(100.5, 7)]))
    assert view.ladder(state).plain.splitlines()[0] == "AAPL book"
    assert "AAPL  MSFT" in view.status_line(state).plain.replace("[AAPL]", "AAPL")
    reduce(state, MarketStatus("AAPL", "halted", "circuit_breaker", NOON + 20 * 10**9, NOON, 6))
    assert view.ladder(state).plain.splitlines()[0] == "AAPL book  HALTED  until 12:00:20.000"
    reduce(state, MarketStatus("MSFT", "auction", "admin", None, NOON, 7))
    assert "[AAPL] HALTED  MSFT AUCTION" in view.status_line(state).plain
    reduce(state, SelectSymbol(symbol="MSFT"))
    assert view.ladder(state).plain.splitlines()[0] == "MSFT book  AUCTION "
    reduce(state, AuctionInfo("MSFT", None, 0, 12, None, NOON, 8))
    assert view.ladder(state).plain.splitlines()[0] == "MSFT book  AUCTION  no cross imb +12"
    reduce(state, AuctionInfo("MSFT", 101.5, 40, -3, NOON + 5 * 10**9, NOON, 9))
    assert view.ladder(state).plain.splitlines()[0] == (
        "MSFT book  AUCTION  ind. 101.5 x 40 imb -3 ends 12:00:05.000"
    )
    reduce(state, Trade("MSFT", 1, 101.5, 40, "auction", NOON + 5 * 10**9, 10))
    assert view.tape(state).plain.splitlines()[1].split() == [
        "12:00:05.000", "MSFT", "auct", "101.5", "40"
    ]  # fmt: skip
