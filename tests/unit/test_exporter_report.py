"""``python -m exporter.report``: the summary from small hand-made CSVs, and the charts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from exporter.report import ReportError, build_report, format_summary, main

TRADES = [
    "ts", "ts_ns", "seq", "trade_id", "symbol", "price", "qty", "aggressor", "buy_account",
    "sell_account", "buy_order_id", "sell_order_id", "buy_fee", "sell_fee", "liquidation",
]  # fmt: skip
PERFORMANCE = [
    "ts", "ts_ns", "seq", "account", "cash", "realized_pnl", "unrealized_pnl", "fees", "equity",
    "initial_margin", "maintenance_margin", "positions",
]  # fmt: skip
T0 = 1_700_000_000_000_000_000


def write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def trade(i: int, symbol: str, price: float, qty: int, aggressor: str, buyer: str, seller: str,
          liquidation: bool = False) -> list[object]:  # fmt: skip
    ts = T0 + i * 1_000_000_000
    return [
        "2023-11-14T22:13:20Z", ts, i, i, symbol, price, qty, aggressor, buyer, seller,
        100 + i, 200 + i, 0.5, -0.1, "true" if liquidation else "false",
    ]  # fmt: skip


def perf(
    i: int, account: str, cash: float, realized: float, fees: float, equity: float
) -> list[object]:
    ts = T0 + i * 1_000_000_000
    return ["2023-11-14T22:13:20Z", ts, i, account, cash, realized, equity - cash, fees, equity,
            0, 0, ""]  # fmt: skip


@pytest.fixture
def out(tmp_path: Path) -> Path:
    write(
        tmp_path / "trades.csv",
        TRADES,
        [
            trade(1, "AAPL", 100.0, 10, "buy", "alice", "maker"),
            trade(2, "AAPL", 101.0, 5, "sell", "maker", "alice"),
            trade(3, "BTC-PERP", 65000.0, 2, "sell", "maker", "bob", liquidation=True),
            trade(4, "BTC-PERP", 64990.0, 1, "sell", "maker", "bob", liquidation=True),
        ],
    )
    write(
        tmp_path / "performance.csv",
        PERFORMANCE,
        [
            # alice starts with 1000 (cash 999.5 after a 0.5 fee), peaks at 1200, falls to 900
            perf(1, "alice", 999.5, 0.0, 0.5, 999.5),
            perf(2, "alice", 1004.5, 5.5, 1.0, 1200.0),
            perf(3, "alice", 1004.5, 5.5, 1.0, 900.0),
            perf(3, "bob", 0.0, -5000.0, 0.0, 0.0),
        ],
    )
    return tmp_path


def test_summary_numbers(out: Path) -> None:
    report = build_report(out)
    alice = report.accounts["alice"]
    assert (alice.trades, alice.volume, alice.notional) == (2, 15, 1505.0)
    assert alice.fees == pytest.approx(0.4)
    assert alice.start_equity == pytest.approx(1000.0)
    assert alice.final_pnl == pytest.approx(-100.0)
    assert alice.max_drawdown == pytest.approx(300.0)
    assert alice.max_drawdown_pct == pytest.approx(0.25)
    assert alice.realized_pnl == 5.5
    assert report.accounts["bob"].liquidations == 2
    assert report.accounts["maker"].liquidations == 0
    assert report.accounts["maker"].trades == 4
    text = format_summary(report)
    assert text.splitlines()[0].split()[:3] == ["account", "trades", "volume"]
    assert "BTC-PERP: 2 trades, 3 lots" in text


def test_command_prints_and_writes_charts(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    charts = out / "charts"
    assert main([str(out), "--out", str(charts)]) == 0
    printed = capsys.readouterr().out
    assert "alice" in printed and "wrote" in printed
    for name in ("equity.png", "price_AAPL.png", "price_BTC-PERP.png"):
        data = (charts / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_missing_files_and_columns_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path)
    write(tmp_path / "trades.csv", ["ts", "price"], [])
    with pytest.raises(ReportError, match="missing columns ts_ns"):
        build_report(tmp_path)
    assert main([str(tmp_path)]) == 2
