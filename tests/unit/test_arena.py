"""The arena (PROTOCOL §8): bad input, simulated time and latency, fairness, crashes, scoring,
outputs, determinism. Everything runs in simulated time (no sockets, no sleeps)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bots.api import Context, ExecutionReport, Intents, LimitOrder, MarketOrder, Strategy
from bots.arena.cli import main
from bots.arena.config import load_arena
from bots.arena.rounds import run_round
from bots.arena.scoring import (
    LEADERBOARD_COLUMNS,
    AccountRecord,
    max_drawdown,
    minute_samples,
    overall_rows,
    rank_rows,
    round_row,
    sharpe,
)
from bots.arena.venue import _TO_VENUE, NS, Venue
from exchange.protocol.config import AccountSpec, load_config
from exchange.protocol.messages import MarketStatus, NewOrder, SetStatus
from exporter.csv_rows import PERFORMANCE_HEADER, TRADES_HEADER, performance_row, trade_row
from tests.support import REPO_ROOT

START = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z

BOTS = """
[[bots]]
name = "maker1"
strategy = "maker"
symbol = "AAPL"
params = { levels = 6, size_growth = 1.5 }

[[bots]]
name = "taker1"
strategy = "taker"
symbol = "AAPL"
params = { max_leverage = 6 }

[[bots]]
name = "noise1"
strategy = "random"
symbol = "AAPL"
"""


def arena_file(tmp_path: Path, arena: str = "", bots: str = BOTS, name: str = "a.toml") -> Path:
    path = tmp_path / name
    config = (REPO_ROOT / "exchange" / "default.toml").as_posix()
    rounds = "" if "rounds" in arena else "rounds = 1"
    path.write_text(f'[arena]\nconfig = "{config}"\n{rounds}\nseconds = 30\n{arena}\n{bots}')
    return path


# --------------------------------------------------------------------------- test strategies


class Buyer(Strategy):
    """Buys one lot at market on its first timer tick (0.1 s after the start)."""

    timer_interval = 0.1

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.reports: list[tuple[int, ExecutionReport]] = []
        self.sent = False
        self.qty = 1
        self.clock: Any = None
        """A callable giving the venue's simulated time (when the report reached us)."""

    def on_timer(self, ctx: Context) -> Intents:
        if self.sent:
            return None
        self.sent = True
        return MarketOrder(side="buy", qty=self.qty)

    def on_execution(self, ctx: Context, report: ExecutionReport) -> Intents:
        self.reports.append((self.clock() if self.clock else ctx.now_ns, report))
        return None


class Quoter(Strategy):
    """Rests one ask at 190.00 at the start."""

    timer_interval = None

    def on_start(self, ctx: Context) -> Intents:
        return LimitOrder(side="sell", price=190.0, qty=5)


class Crasher(Strategy):
    """Quotes, then raises on its third timer tick."""

    timer_interval = 1.0

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.ticks = 0

    def on_start(self, ctx: Context) -> Intents:
        return LimitOrder(side="buy", price=180.0, qty=1)

    def on_timer(self, ctx: Context) -> Intents:
        self.ticks += 1
        if self.ticks == 3:
            raise ZeroDivisionError("boom")
        return None


def venue(**kwargs: Any) -> Venue:
    system = load_config(None)
    names = kwargs.pop("names", ["a", "b", "c"])
    accounts = [AccountSpec(name=n, cash=100_000.0) for n in names]
    return Venue(system, accounts=accounts, start_ns=START, **kwargs)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("arena", "bots", "expected"),
    [
        ("speed = 3", BOTS, "a.toml:5: unknown key 'speed' in [arena]"),
        ("cash = -5", BOTS, "a.toml:5: [arena] cash: expected a number > 0"),
        (
            "",
            BOTS.replace('name = "noise1"', 'name = "noise1"\ncolour = 1'),
            "a.toml:21: bot 'noise1': unknown key 'colour'",
        ),
        ("", BOTS.replace('"random"', '"nosuch"'), "a.toml:21: bot 'noise1': unknown strategy"),
        (
            "",
            BOTS.replace("max_leverage = 6", "max_leverage = 6, wings = 2"),
            "a.toml:17: bot 'taker1': taker has no parameter 'wings'",
        ),
        (
            "",
            BOTS.replace("max_leverage = 6", 'max_leverage = "lots"'),
            "a.toml:17: bot 'taker1': taker: parameter 'max_leverage'",
        ),
        ("seed = 1 2", BOTS, "a.toml:5: TOML error"),
        ('market = "lobster:nowhere.csv"', BOTS, "a.toml:5: market: LOBSTER file not found"),
        ("", BOTS.replace('"AAPL"', '"TSLA"', 1), "a.toml:10: bot 'maker1': unknown symbol TSLA"),
        ("", BOTS.replace('"taker1"', '"lobster1"'), "a.toml:14: bot 'lobster1': name: reserved"),
    ],
    ids=[
        "unknown-key",
        "bad-value",
        "unknown-bot-key",
        "unknown-strategy",
        "unknown-param",
        "bad-param",
        "toml-syntax",
        "missing-lobster-file",
        "unknown-symbol",
        "reserved-name",
    ],
)
def test_bad_input_exits_2_with_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arena: str, bots: str, expected: str
) -> None:
    path = arena_file(tmp_path, arena, bots)
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert expected in err, err
    assert not out.exists()


def test_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "none.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "none.toml: cannot read" in capsys.readouterr().err
    path = tmp_path / "a.toml"
    path.write_text('[arena]\nrounds = 1\nconfig = "missing.toml"\n' + BOTS)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert "a.toml:3: config: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_lobster_file_on_a_symbol_the_config_does_not_list_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "TSLA_2012-06-21_34200000_57600000_message_1.csv"
    data.write_text("34200.1,1,1,10,2000000,1\n")
    path = arena_file(tmp_path, f'market = "lobster:{data.name}"')
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "a.toml:5: market: the LOBSTER file trades 'TSLA'" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- time and latency


def test_latency_delays_requests_and_replies() -> None:
    v = venue(seed=1, latency_ms=5.0)
    v.add_bot("b", "quoter", Quoter(), "b", ["AAPL"], seed=1)
    buyer = Buyer()
    buyer.clock = lambda: v.now_ns
    v.add_bot("a", "buyer", buyer, "a", ["AAPL"], seed=2)
    v.run_until(START + NS)
    # sent on the timer at 100 ms, applied by the core 5 ms later, reported back 5 ms after
    first_seen, first = buyer.reports[0]
    assert first.ts == START + 105_000_000
    assert first_seen == START + 110_000_000
    assert any(r.exec_type == "trade" for _, r in buyer.reports)
    assert v.now_ns == START + NS


def test_links_are_fifo_even_with_jitter() -> None:
    v = venue(seed=3, latency_ms=1.0, jitter_ms=5.0)
    seen: list[int] = []

    class Watcher(Strategy):
        timer_interval = 0.01

        def on_book(self, ctx: Context, book: Any) -> Intents:
            seen.append(book.seq)
            return None

        def on_timer(self, ctx: Context) -> Intents:
            price = 189.0 + ctx.random.randrange(100) / 100
            return LimitOrder(side="buy", price=price, qty=1)

    v.add_bot("a", "watcher", Watcher(), "a", ["AAPL"], seed=1)
    v.run_until(START + 2 * NS)
    assert len(seen) > 50
    assert seen == sorted(seen)
    assert all(bot.driver.stats["resubscribes"] == 0 for bot in v.bots)


def test_charged_compute_delays_a_slow_bots_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    def first_report_ts(charge: bool) -> int:
        ticks = iter(range(1_000_000))
        monkeypatch.setattr("bots.arena.venue.perf_counter", lambda: next(ticks) * 0.002)
        v = venue(seed=1, latency_ms=1.0, charge_compute=charge)
        v.add_bot("b", "quoter", Quoter(), "b", ["AAPL"], seed=1)
        buyer = Buyer()
        v.add_bot("a", "buyer", buyer, "a", ["AAPL"], seed=2)
        v.run_until(START + NS)
        return buyer.reports[0][1].ts or 0

    # every callback "takes" 2 ms of wall time: charged, the order leaves 2 ms later
    assert first_report_ts(charge=False) == START + 101_000_000
    assert first_report_ts(charge=True) == START + 103_000_000


def test_simultaneous_bots_are_ordered_by_a_seeded_shuffle() -> None:
    def first_buyer(seed: int) -> str:
        v = venue(seed=seed, latency_ms=1.0, names=["q", "a", "b"])
        v.add_bot("q", "quoter", Quoter(), "q", ["AAPL"], seed=1)
        v.add_bot("a", "buyer", Buyer(), "a", ["AAPL"], seed=2)
        v.add_bot("b", "buyer", Buyer(), "b", ["AAPL"], seed=3)
        v.run_until(START + NS)  # both buy at 100 ms: same instant, same latency
        return min(("a", "b"), key=lambda n: _first_trade_seq(v, n))

    winners = [first_buyer(seed) for seed in range(12)]
    assert set(winners) == {"a", "b"}, winners
    assert winners == [first_buyer(seed) for seed in range(12)]  # and reproducible


def _first_trade_seq(v: Venue, account: str) -> int:
    bot = v.by_account[account]
    strategy = bot.driver.strategy
    assert isinstance(strategy, Buyer)
    trades = [r.seq or 0 for _, r in strategy.reports if r.exec_type == "trade"]
    return min(trades) if trades else 1 << 62


def test_gtd_orders_expire_at_the_engines_next_clock_tick() -> None:
    events: list[Any] = []
    v = venue(seed=1, latency_ms=1.0, on_events=events.extend)
    bot = v.add_bot("a", "quoter", Quoter(), "a", ["AAPL"], seed=1)
    v.start()
    deadline = START + 1_030_000_000
    order = NewOrder(symbol="AAPL", side="buy", qty=1, price=180.0, tif="gtd", expire_at=deadline)
    v._push(START + 100_000_000, _TO_VENUE, bot.index, [order])  # as if the bot sent it
    v.run_until(START + 2 * NS)
    expired = [
        e
        for e in events
        if isinstance(e, ExecutionReport) and e.account == "a" and e.exec_type == "expired"
    ]
    assert len(expired) == 1
    assert expired[0].ts == START + 1_050_000_000  # the engine's 50 ms tick after the deadline


# --------------------------------------------------------------------------- crashes


def test_a_crashing_bot_is_cancelled_and_sits_out_while_the_round_goes_on(
    tmp_path: Path,
) -> None:
    bots = (
        BOTS
        + '\n[[bots]]\nname = "crash"\nsymbol = "AAPL"\n'
        + 'strategy = "tests.unit.test_arena:Crasher"\n'
    )
    config = load_arena(arena_file(tmp_path, bots=bots))
    logged: list[str] = []
    result = run_round(config, 1, log=logged.append)
    rows = {row.bot: row for row in result.rows}
    assert rows["crash"].status == "crashed" and rows["crash"].errors == 1
    assert all(rows[b].status == "ok" for b in ("maker1", "taker1", "noise1"))
    assert result.venue.core.open_orders("crash") == []
    assert any("ZeroDivisionError: boom" in line for line in logged)
    late = [f for f in result.recorder.fills if f.ts > START + 5 * NS]
    assert late  # the others kept trading
    config = load_arena(arena_file(tmp_path, "stop_on_error = false", bots=bots))
    rows = {row.bot: row for row in run_round(config, 1).rows}
    assert rows["crash"].status == "ok" and rows["crash"].errors == 1


# --------------------------------------------------------------------------- scoring


def test_leaderboard_math_on_a_hand_built_equity_series() -> None:
    minute = 60 * NS
    series = [(START, 100.0), (START + minute, 110.0), (START + 90 * NS, 88.0)]
    series += [(START + 2 * minute, 99.0), (START + 3 * minute, 99.0)]
    samples = minute_samples(series, START, START + 3 * minute, 100.0)
    assert samples == [100.0, 110.0, 99.0, 99.0]
    returns = [0.1, -0.1, 0.0]
    mean = sum(returns) / 3
    std = (sum((r - mean) ** 2 for r in returns) / 3) ** 0.5
    assert sharpe(samples) == pytest.approx(mean / std)
    assert sharpe([100.0, 100.0, 100.0]) == 0.0
    assert max_drawdown([100.0, 110.0, 88.0, 99.0, 120.0, 100.0]) == 22.0
    record = AccountRecord(trades=3, volume=30, liquidations=0, equity=series[1:])
    row = round_row(
        1,
        "x",
        "maker",
        crashed=False,
        cash=100.0,
        final_equity=99.0,
        fees=0.5,
        record=record,
        errors=0,
        start_ns=START,
        end_ns=START + 3 * minute,
    )
    assert (row.pnl, row.return_pct, row.max_drawdown) == (-1.0, -1.0, 22.0)
    assert row.sharpe == pytest.approx(round(mean / std, 6))
    other = round_row(
        1,
        "a",
        "taker",
        crashed=True,
        cash=100.0,
        final_equity=99.0,
        fees=0.0,
        record=AccountRecord(),
        errors=2,
        start_ns=START,
        end_ns=START + minute,
    )
    ranked = rank_rows([row, other])
    assert [(r.bot, r.rank) for r in ranked] == [("a", 1), ("x", 2)]  # tie on pnl: by name
    total = overall_rows([*ranked, *rank_rows([row, other])], cash=100.0, rounds=2)
    a = next(r for r in total if r.bot == "a")
    assert (a.round, a.pnl, a.return_pct, a.status, a.errors) == ("all", -2.0, -1.0, "crashed", 4)


# --------------------------------------------------------------------------- outputs


def test_files_columns_and_rows_are_the_exporters(tmp_path: Path) -> None:
    path = arena_file(tmp_path, "rounds = 2")
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out)]) == 0
    for n in (1, 2):
        trades = (out / f"round-{n}" / "trades.csv").read_text()
        performance = (out / f"round-{n}" / "performance.csv").read_text()
        assert trades.splitlines()[0].split(",") == list(TRADES_HEADER)
        assert performance.splitlines()[0].split(",") == list(PERFORMANCE_HEADER)
        assert len(trades.splitlines()) > 10
        accounts = {row["account"] for row in csv.DictReader(io.StringIO(performance))}
        assert accounts == {"maker1", "taker1", "noise1"}
    config = load_arena(path)
    result = run_round(config, 1)
    rows = list(csv.reader(io.StringIO((out / "round-1" / "trades.csv").read_text())))[1:]
    assert rows == [trade_row(f) for f in result.recorder.fills]
    rows = list(csv.reader(io.StringIO((out / "round-1" / "performance.csv").read_text())))[1:]
    assert rows == [performance_row(u) for u in result.recorder.updates]
    board = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert list(board[0]) == list(LEADERBOARD_COLUMNS)
    assert [r["round"] for r in board] == ["1"] * 3 + ["2"] * 3 + ["all"] * 3
    assert json.loads((out / "leaderboard.json").read_text())[0]["bot"] == board[0]["bot"]
    assert (out / "arena.png").read_bytes()[:4] == b"\x89PNG"
    total = {r["bot"]: float(r["pnl"]) for r in board if r["round"] == "all"}
    for bot, pnl in total.items():
        assert pnl == pytest.approx(sum(float(r["pnl"]) for r in board[:6] if r["bot"] == bot))


def test_same_file_and_seed_give_byte_identical_files(tmp_path: Path) -> None:
    path = arena_file(tmp_path, "rounds = 2\njitter_ms = 0.5")
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:  # separate processes: hash randomisation must not matter
        subprocess.run(
            [sys.executable, "-m", "bots.arena", str(path), "--out", str(out)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    files = sorted(
        p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.suffix in (".csv", ".json")
    )
    assert len(files) == 6
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    other = tmp_path / "three"
    assert main([str(path), "--out", str(other), "--seed", "2"]) == 0
    assert (other / "leaderboard.csv").read_bytes() != (outs[0] / "leaderboard.csv").read_bytes()


class Unbuildable(Strategy):
    def __init__(self, config: Any = None) -> None:
        raise RuntimeError("no")


class CrashAtStart(Strategy):
    def on_start(self, ctx: Context) -> Intents:
        raise KeyError("start")


def test_a_strategy_that_cannot_be_built_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bots = BOTS.replace('"random"', '"tests.unit.test_arena:Unbuildable"')
    assert main([str(arena_file(tmp_path, bots=bots)), "--out", str(tmp_path / "o")]) == 2
    assert "a.toml:21: bot 'noise1': tests.unit.test_arena:Unbuildable: RuntimeError: no" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_a_bot_failing_in_on_start_is_crashed_at_once(tmp_path: Path) -> None:
    bots = BOTS.replace('"random"', '"tests.unit.test_arena:CrashAtStart"')
    result = run_round(load_arena(arena_file(tmp_path, bots=bots)), 1)
    row = next(r for r in result.rows if r.bot == "noise1")
    assert (row.status, row.errors, row.trades) == ("crashed", 1, 0)


class StatusWatcher(Strategy):
    """Records the statuses it hears and what ``ctx.status()`` said."""

    timer_interval = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.heard: list[tuple[str, str, str]] = []

    def on_status(self, ctx: Context, status: MarketStatus) -> Intents:
        self.heard.append((status.symbol, status.status, ctx.status(status.symbol)))
        return None


def test_bots_hear_a_halt_as_the_gateway_broadcasts_it() -> None:
    v = venue(seed=1, latency_ms=1.0)
    watcher = StatusWatcher()
    bot = v.add_bot("a", "watcher", watcher, "a", ["AAPL"], seed=1)
    v.start()
    v.run_until(START + NS // 10)
    v._submit_timer(SetStatus(symbol="AAPL", status="halted"))
    v.run_until(START + NS)
    assert watcher.heard == [("AAPL", "halted", "halted")]
    assert bot.driver.context.instruments["AAPL"].status == "halted"  # the relay's list too
