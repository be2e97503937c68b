"""The Textual monitor driven by Pilot: panels at a fixed size, keys, and the connection
indicator against a small relay stand-in on port 0 that drops the connection."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static
from websockets.asyncio.server import ServerConnection, serve

from exchange.protocol.messages import (
    AccountUpdate,
    AuctionInfo,
    BookSnapshot,
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
from monitor.app import MonitorApp
from monitor.state import MonitorState, reduce
from tests.support import seconds

SIZE = (120, 40)


def info(symbol: str, tick: float) -> InstrumentInfo:
    return InstrumentInfo(
        symbol=symbol, tick_size=tick, lot_size=1.0, reference_price=100.0, initial_margin=0.1,
        maintenance_margin=0.05, max_order_qty=100, max_position=1000, price_band=0.1,
        maker_fee=0.0, taker_fee=0.0,
    )  # fmt: skip


def market() -> MonitorState:
    state = MonitorState()
    reduce(state, Instruments(instruments=[info("AAPL", 0.01), info("BTC-PERP", 0.5)]))
    reduce(state, BookSnapshot(symbol="AAPL", seq=3, ts=3, bids=[(189.9, 40)], asks=[(190.1, 25)]))
    reduce(
        state,
        BookSnapshot(symbol="BTC-PERP", seq=4, ts=4, bids=[(64999.5, 2)], asks=[(65001.0, 1)]),
    )
    for i, price in enumerate([190.0, 190.05, 190.1]):
        trade = Trade(
            symbol="AAPL", trade_id=i, price=price, qty=5, aggressor="buy", ts=10**9 * i, seq=5 + i
        )
        reduce(state, trade)
    update = AccountUpdate(
        account="alice", cash=99_000.0, equity=100_250.0, realized_pnl=-10.0,
        unrealized_pnl=1_250.0, fees=3.0, initial_margin=20_000.0, maintenance_margin=10_000.0,
        available=80_250.0, positions=[Position("AAPL", 100, 187.6, 190.0, -10.0, 1_250.0)], seq=9,
    )  # fmt: skip
    reduce(state, update)
    return state


def with_news_and_a_round(state: MonitorState) -> MonitorState:
    """``state`` after two news items, round 2 starting and its first leaderboard."""
    for seq, (headline, symbols, sentiment, shock) in enumerate(
        [
            ("Fed holds rates", [], 0.0, None),
            ("AAPL beats estimates", ["AAPL"], 0.9, 0.05),
        ],
        start=20,
    ):
        reduce(
            state,
            News(
                news_id=seq - 19, headline=headline, body=None, symbols=symbols,
                sentiment=sentiment, shock=shock, ts=seq * 10**9, seq=seq,
            ),
        )  # fmt: skip
    reduce(state, RoundStarted(round=2, name="final", cash=100_000.0, ts=30 * 10**9, seq=30))
    rows = [
        LeaderboardRow("alice", 101_500.0, 1_500.0, 1.5, 200.0, 7, 0),
        LeaderboardRow("bob", 99_000.25, -999.75, -0.99975, 1_200.5, 4, 1),
    ]
    reduce(state, Leaderboard(round=2, ts=31 * 10**9, rows=rows, seq=31))
    return state


def text(app: MonitorApp, widget_id: str) -> str:
    content: Any = app.query_one(f"#{widget_id}", Static).content
    return str(getattr(content, "plain", content))


async def test_panels_at_a_fixed_size() -> None:
    app = MonitorApp(None, state=market())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert text(app, "status").startswith(" CONNECTING ")
        assert "[AAPL]  BTC-PERP" in text(app, "status")
        ladder = text(app, "ladder").splitlines()
        assert ladder[0] == "AAPL book"
        assert ladder[2].split() == ["ASK", "190.10", "25", "25"]
        assert "spread 0.20 (10.5 bps)  mid 190.00" in ladder[3]
        assert ladder[4].split() == ["BID", "189.90", "40", "40"]
        tape = text(app, "tape").splitlines()
        assert tape[1].split() == ["00:00:02.000", "AAPL", "buy", "190.10", "5"]
        assert "AAPL last 190.10  low 190.00  high 190.10" in text(app, "price-label")
        accounts = text(app, "bottom").splitlines()
        assert accounts[1].split()[:5] == ["1", "alice", "100,250.0", "-10.0", "1,250.0"]
        assert "20%  AAPL:+100" in accounts[1]


async def test_keys_switch_symbols_and_panels_and_q_quits() -> None:
    app = MonitorApp(None, state=market())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right")
        assert text(app, "ladder").startswith("BTC-PERP book")
        assert "65001.0" in text(app, "ladder")
        await pilot.press("left", "l")
        assert text(app, "ladder").startswith("AAPL book")
        assert "no liquidations yet" in text(app, "bottom")
        await pilot.press("t")
        assert "AAPL" in text(app, "bottom").splitlines()[1]
        await pilot.press("a")
        assert "alice" in text(app, "bottom")
        await pilot.press("n")
        assert "no news yet" in text(app, "bottom")
        await pilot.press("b")
        assert "leaderboard: none yet" in text(app, "bottom")
        await pilot.press("q")
    assert app.return_code == 0


async def test_news_ticker_and_the_news_and_leaderboard_panels() -> None:
    app = MonitorApp(None, state=with_news_and_a_round(market()))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert text(app, "headline") == (
            "NEWS 00:00:21.000 +0.90 AAPL         AAPL beats estimates [shock +5%]"
        )
        await pilot.press("n")
        news = text(app, "bottom").splitlines()
        assert "AAPL beats estimates" in news[1] and "Fed holds rates" in news[2]
        await pilot.press("b")
        board = text(app, "bottom").splitlines()
        assert board[0].startswith("round 2 'final', cash 100,000.0")
        first = ["1", "alice", "101,500.0", "1,500.0", "+1.50%", "200.0", "7", "0"]
        assert board[2].split() == first
        assert board[3].split()[:3] == ["2", "bob", "99,000.25"]


async def test_a_halt_and_an_auction_show_in_the_status_line_and_the_book_title() -> None:
    state = market()
    symbol = state.selected or ""
    reduce(state, MarketStatus(symbol, "halted", "admin", 20 * 10**9, 10**9, 30))
    app = MonitorApp(None, state=state)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert f"[{symbol}] HALTED" in text(app, "status")
        assert text(app, "ladder").splitlines()[0] == f"{symbol} book  HALTED  until 00:00:20.000"
        reduce(state, MarketStatus(symbol, "auction", "admin", None, 2 * 10**9, 31))
        reduce(state, AuctionInfo(symbol, None, 0, 5, None, 2 * 10**9, 32))
        app.refresh_view()
        await pilot.pause()
        assert f"[{symbol}] AUCTION" in text(app, "status")
        assert text(app, "ladder").splitlines()[0] == f"{symbol} book  AUCTION  no cross imb +5"


async def until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 10) -> None:
    """Let the app run until ``condition`` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + seconds(timeout)
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await pilot.pause(0.05)


async def test_indicator_follows_the_connection_and_the_app_reconnects() -> None:
    connections: list[dict[str, Any]] = []
    drop = asyncio.Event()

    async def relay(ws: ServerConnection) -> None:
        connections.append(json.loads(await ws.recv()))
        snapshot = {
            "type": "book_snapshot", "symbol": "AAPL", "seq": 1, "ts": 1,
            "bids": [[99.0, 1]], "asks": [[101.0, 2]],
        }  # fmt: skip
        news = {
            "type": "news", "news_id": 1, "headline": f"hello {len(connections)}",
            "body": None, "symbols": ["AAPL"], "sentiment": -0.5, "shock": None,
            "ts": 2, "seq": 1 + len(connections), "reference_prices": {},
        }  # fmt: skip
        board = {
            "type": "leaderboard", "round": 1, "ts": 3, "seq": 3,
            "rows": [{"account": "zed", "equity": 5.0, "pnl": 1.0, "return_pct": 25.0,
                      "max_drawdown": 0.0, "trades": 1, "liquidations": 0}],
        }  # fmt: skip
        await ws.send(json.dumps([snapshot, news, board]))
        if len(connections) == 1:
            await drop.wait()
            return  # closes the connection
        await ws.wait_closed()

    async with serve(relay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        app = MonitorApp(f"ws://127.0.0.1:{port}", token="monitor-token", fps=20)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "101.00" in text(app, "ladder"))
            assert text(app, "status").startswith(" CONNECTED ")
            assert connections[0]["channels"][-1] == "accounts"
            assert {"news", "rounds"} <= set(connections[0]["channels"])
            assert "hello 1" in text(app, "headline")
            assert app.state.leaderboard is not None
            assert app.state.leaderboard.rows[0].account == "zed"
            assert connections[0]["token"] == "monitor-token"
            drop.set()
            # the drop is seen (it may be over before a poll could catch the status)
            await until(pilot, lambda: app.state.disconnects == 1)
            await until(pilot, lambda: len(connections) == 2 and app.state.status == "connected")
            await until(pilot, lambda: text(app, "status").startswith(" CONNECTED "))
            await until(pilot, lambda: "hello 2" in text(app, "headline"))
            assert app.renders > 2


async def test_indicator_shows_the_relay_is_down_and_it_keeps_retrying() -> None:
    app = MonitorApp("ws://127.0.0.1:9", fps=20)  # nothing listens on port 9
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.attempts >= 2)
        await until(pilot, lambda: text(app, "status").startswith(" DISCONNECTED "))
        assert "Connect call failed" in text(app, "status")
        assert "accounts: start the monitor with --token" in text(app, "bottom")


async def test_a_render_tick_during_shutdown_is_harmless() -> None:
    # Textual removes the screen's widgets before it stops the app's timers: a tick that lands
    # in between must not look the widgets up (it used to raise NoMatches and fail the app).
    app = MonitorApp(None, state=market())
    async with app.run_test(size=SIZE):
        pass
    renders = app.renders
    app.refresh_view()
    assert app.renders == renders


# ------------------------------------------------------------------ screen snapshots

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("EXCHANGE_UPDATE_SNAPSHOTS") == "1"


def screen_text(app: MonitorApp) -> str:
    """The whole screen as plain text, one line per row, trailing blanks stripped.

    The same rendering as ``App.export_screenshot`` (Textual's compositor, full update) but
    exported as text: the characters are compared, not colours, so a Textual upgrade that
    only restyles does not break the snapshots."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def assert_screen(app: MonitorApp, name: str) -> None:
    """Compare the screen with ``snapshots/NAME.txt``; ``EXCHANGE_UPDATE_SNAPSHOTS=1``
    rewrites the file instead (review the diff before committing it)."""
    path = SNAPSHOTS / f"{name}.txt"
    actual = screen_text(app)
    if UPDATE_SNAPSHOTS:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path}: run with EXCHANGE_UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"screen differs from {path}:\n{actual}"


async def test_snapshot_accounts_view_with_a_ladder_as_deep_as_its_panel() -> None:
    state = market()
    bids = [(round(189.9 - 0.01 * i, 2), 10 + i) for i in range(15)]
    asks = [(round(190.1 + 0.01 * i, 2), 10 + i) for i in range(15)]
    reduce(state, BookSnapshot(symbol="AAPL", seq=20, ts=20, bids=bids, asks=asks))
    app = MonitorApp(None, state=state)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "190.16" in text(app, "ladder"))  # laid out: depth fits
        assert_screen(app, "monitor_accounts")


async def test_snapshot_second_symbol_with_the_liquidation_log() -> None:
    state = market()
    reduce(
        state,
        Liquidation(
            account="bob", symbol="BTC-PERP", side="sell", qty=2, price=64999.5, ts=5 * 10**9,
            seq=12,
        ),
    )  # fmt: skip
    app = MonitorApp(None, state=state)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right", "l")
        await pilot.pause()
        assert_screen(app, "monitor_liquidations")


async def test_snapshot_leaderboard_panel_with_the_news_ticker() -> None:
    app = MonitorApp(None, state=with_news_and_a_round(market()))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: "alice" in text(app, "bottom"))
        assert_screen(app, "monitor_leaderboard")
