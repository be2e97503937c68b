"""The tournament's standings from exporter files (``bots.tournament.standings``), in memory:
rounds cut by seq, the arena's scoring rules, system accounts left out, the files written."""

from __future__ import annotations

import json
from pathlib import Path

from bots.tournament.standings import (
    RoundSpan,
    leaderboard_rows,
    read_rounds,
    relay_table,
    write_results,
)
from exchange.protocol.messages import AccountUpdate, Fill, Leaderboard, LeaderboardRow
from exporter.csv_rows import (
    PERFORMANCE_HEADER,
    TRADES_HEADER,
    format_rows,
    header_line,
    performance_row,
    trade_row,
)

NS = 1_000_000_000


def update(seq: int, account: str, equity: float, fees: float = 0.0) -> AccountUpdate:
    return AccountUpdate(
        account=account,
        cash=equity,
        equity=equity,
        realized_pnl=0.0,
        unrealized_pnl=0.0,
        fees=fees,
        initial_margin=0.0,
        maintenance_margin=0.0,
        available=equity,
        positions=[],
        ts=seq * NS,
        seq=seq,
    )


def fill(seq: int, buyer: str, seller: str, qty: int, liquidation: bool = False) -> Fill:
    return Fill(
        symbol="AAPL",
        trade_id=seq,
        price=190.0,
        qty=qty,
        aggressor="sell",
        buy_account=buyer,
        sell_account=seller,
        buy_order_id=1,
        sell_order_id=2,
        buy_fee=0.0,
        sell_fee=0.0,
        liquidation=liquidation,
        ts=seq * NS,
        seq=seq,
    )


def span(index: int, start: int, end: int) -> RoundSpan:
    board = Leaderboard(
        round=index,
        ts=end * NS,
        seq=end,
        rows=[LeaderboardRow("a", 1000.0, 0.0, 0.0, 0.0, 0, 0)],
    )
    return RoundSpan(
        index, index, f"round-{index}", 1000.0, start, start * NS, end, end * NS, board
    )


def exporter_files(folder: Path) -> None:
    fills = [fill(12, "a", "b", 5), fill(14, "b", "a", 2, liquidation=True), fill(31, "a", "b", 1)]
    updates = [
        update(5, "a", 990.0),  # before round 1: not counted
        update(11, "a", 1000.0),
        update(11, "b", 1000.0),
        update(11, "insurance_fund", 5000.0),
        update(13, "a", 1010.0, fees=1.5),
        update(15, "b", 980.0),
        update(21, "a", 1234.0),  # after round 1's final leaderboard (20): not counted
        update(23, "a", 1000.0),
        update(23, "b", 1000.0),
        update(32, "b", 1003.0),
    ]
    (folder / "trades.csv").write_text(
        header_line(TRADES_HEADER) + format_rows(trade_row(f) for f in fills)
    )
    (folder / "performance.csv").write_text(
        header_line(PERFORMANCE_HEADER)
        + format_rows(performance_row(u) for u in updates)
        + "2026-01-01T00:00:00.000000000Z,99000000000,99,a,1"  # torn last line: skipped
    )


def test_rounds_are_cut_by_seq_and_ranked_like_the_arena(tmp_path: Path) -> None:
    exporter_files(tmp_path)
    spans = [span(1, 10, 20), span(2, 22, 40)]
    files = read_rounds(tmp_path, spans)
    assert [len(f.trades) for f in files] == [2, 1]
    assert [len(f.performance) for f in files] == [5, 3]
    rows = leaderboard_rows(spans, files, ["insurance_fund"])
    table = [
        (r.round, r.rank, r.bot, r.pnl, r.fees, r.trades, r.volume, r.liquidations) for r in rows
    ]
    assert table == [
        (1, 1, "a", 10.0, 1.5, 2, 7, 1),  # a was liquidated: the seller and the aggressor
        (1, 2, "b", -20.0, 0.0, 2, 7, 0),
        (2, 1, "b", 3.0, 0.0, 1, 1, 0),
        (2, 2, "a", 0.0, 0.0, 1, 1, 0),
        ("all", 1, "a", 10.0, 1.5, 3, 8, 1),
        ("all", 2, "b", -17.0, 0.0, 3, 8, 0),
    ]
    assert rows[0].max_drawdown == 0.0 and rows[1].max_drawdown == 20.0
    assert rows[0].return_pct == 1.0 and rows[-1].return_pct == -0.85
    assert {r.status for r in rows} == {"ok"} and {r.strategy for r in rows} == {""}
    only_b = leaderboard_rows(spans, files, ["insurance_fund"], {"b"})
    assert [(r.round, r.rank, r.bot, r.pnl) for r in only_b] == [
        (1, 1, "b", -20.0),
        (2, 1, "b", 3.0),
        ("all", 1, "b", -17.0),
    ]


def test_the_files_are_the_arenas_plus_the_rounds(tmp_path: Path) -> None:
    source = tmp_path / "out"
    source.mkdir()
    exporter_files(source)
    spans = [span(1, 10, 20)]
    files = read_rounds(source, spans)
    rows = leaderboard_rows(spans, files, ["insurance_fund"])
    target = tmp_path / "tournament"
    write_results(target, spans, files, rows)
    assert (target / "leaderboard.csv").read_text().splitlines()[:2] == [
        "round,rank,bot,strategy,status,pnl,return_pct,sharpe,max_drawdown,fees,trades,volume,"
        "liquidations,errors",
        "1,1,a,,ok,10.0,1.0,0.0,0.0,1.5,2,7,1,0",
    ]
    assert len(json.loads((target / "leaderboard.json").read_text())) == 4
    summary = json.loads((target / "rounds.json").read_text())
    assert (summary[0]["start_seq"], summary[0]["end_seq"]) == (10, 20)
    assert summary[0]["leaderboard"][0]["account"] == "a"
    copied = (target / "round-1" / "trades.csv").read_text().splitlines()
    original = (source / "trades.csv").read_text().splitlines()
    assert copied == original[:3]
    assert "rank  account" in relay_table(spans[0].final)
