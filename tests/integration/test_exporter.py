"""The exporter against a real core behind a test event port: exact rows, exactly once across
restarts, crashes (SIGKILL), SIGTERM, lost engine history and a reset engine."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from exchange.protocol.config import ExporterSection
from exchange.protocol.messages import AccountUpdate, Fill, MarketStatus, News, RoundStarted
from exporter.health import HealthServer
from exporter.service import Exporter
from tests.integration.clients import http_get
from tests.integration.fake_engine import (
    FakeEngine,
    liquidation_scenario,
    operator_flow,
    random_flow,
    status_flow,
)
from tests.support import REPO_ROOT, seconds

TRADES_COLUMNS = (
    "ts,ts_ns,seq,trade_id,symbol,price,qty,aggressor,buy_account,sell_account,"
    "buy_order_id,sell_order_id,buy_fee,sell_fee,liquidation"
)
PERFORMANCE_COLUMNS = (
    "ts,ts_ns,seq,account,cash,realized_pnl,unrealized_pnl,fees,equity,initial_margin,"
    "maintenance_margin,positions"
)
NEWS_COLUMNS = "ts,ts_ns,seq,news_id,headline,symbols,sentiment,shock,body"
ROUNDS_COLUMNS = "ts,ts_ns,seq,round,name,cash"
STATUS_COLUMNS = "ts,ts_ns,seq,symbol,status,reason,until"


@pytest.fixture
async def engine() -> AsyncIterator[FakeEngine]:
    fake = FakeEngine()
    await fake.start()
    yield fake
    await fake.stop()


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def iso(ts_ns: int) -> str:
    moment = datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_ns % 1_000_000_000:09d}Z"


def fills(engine: FakeEngine) -> list[Fill]:
    return [e for e in engine.events if type(e) is Fill]


def updates(engine: FakeEngine) -> list[AccountUpdate]:
    return [e for e in engine.events if type(e) is AccountUpdate]


def news_events(engine: FakeEngine) -> list[News]:
    return [e for e in engine.events if type(e) is News]


def rounds(engine: FakeEngine) -> list[RoundStarted]:
    return [e for e in engine.events if type(e) is RoundStarted]


def statuses(engine: FakeEngine) -> list[MarketStatus]:
    return [e for e in engine.events if type(e) is MarketStatus]


def one_line(text: str | None) -> str:
    return (text or "").replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def check_news(row: dict[str, str], news: News) -> None:
    assert row["ts"] == iso(news.ts) and row["ts_ns"] == str(news.ts)
    assert (row["seq"], row["news_id"]) == (str(news.seq), str(news.news_id))
    assert row["headline"] == one_line(news.headline) and row["body"] == one_line(news.body)
    assert row["symbols"] == ";".join(news.symbols)
    assert float(row["sentiment"]) == news.sentiment and "e" not in row["sentiment"]
    if news.shock is None:
        assert row["shock"] == ""
    else:
        assert float(row["shock"]) == news.shock and "e" not in row["shock"]


def check_round(row: dict[str, str], event: RoundStarted) -> None:
    assert row["ts"] == iso(event.ts) and row["ts_ns"] == str(event.ts)
    assert (row["seq"], row["round"], row["name"]) == (str(event.seq), str(event.round), event.name)
    assert float(row["cash"]) == event.cash


def check_trade(row: dict[str, str], fill: Fill) -> None:
    assert row["ts"] == iso(fill.ts) and row["ts_ns"] == str(fill.ts)
    assert (row["seq"], row["trade_id"], row["symbol"]) == (
        str(fill.seq),
        str(fill.trade_id),
        fill.symbol,
    )
    assert float(row["price"]) == fill.price and "e" not in row["price"]
    assert (row["qty"], row["aggressor"]) == (str(fill.qty), fill.aggressor)
    assert (row["buy_account"], row["sell_account"]) == (fill.buy_account, fill.sell_account)
    assert (row["buy_order_id"], row["sell_order_id"]) == (
        str(fill.buy_order_id),
        str(fill.sell_order_id),
    )
    assert float(row["buy_fee"]) == fill.buy_fee and float(row["sell_fee"]) == fill.sell_fee
    assert row["liquidation"] == ("true" if fill.liquidation else "false")


def check_performance(row: dict[str, str], update: AccountUpdate) -> None:
    assert row["ts"] == iso(update.ts or 0) and row["ts_ns"] == str(update.ts)
    assert (row["seq"], row["account"]) == (str(update.seq), update.account)
    for field in (
        "cash",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "equity",
        "initial_margin",
        "maintenance_margin",
    ):
        assert float(row[field]) == getattr(update, field), field
    held = sorted((p.symbol, p.qty, p.avg_px) for p in update.positions if p.qty)
    parsed = []
    for part in filter(None, row["positions"].split(";")):
        symbol, rest = part.split(":")
        qty, avg_px = rest.split("@")
        parsed.append((symbol, int(qty), float(avg_px)))
    assert parsed == held


def assert_exactly_once(engine: FakeEngine, out: Path, *, after: int = 0) -> None:
    """Every fill and account update with seq > ``after`` has exactly one correct row."""
    trades = read_rows(out / "trades.csv")
    expected_fills = [f for f in fills(engine) if f.seq > after]
    assert [int(r["seq"]) for r in trades] == [f.seq for f in expected_fills]
    for row, fill in zip(trades, expected_fills, strict=True):
        check_trade(row, fill)
    performance = read_rows(out / "performance.csv")
    expected_updates = [u for u in updates(engine) if (u.seq or 0) > after]
    assert [int(r["seq"]) for r in performance] == [u.seq for u in expected_updates]
    for row, update in zip(performance, expected_updates, strict=True):
        check_performance(row, update)
    news_rows = read_rows(out / "news.csv")
    expected_news = [n for n in news_events(engine) if n.seq > after]
    assert [int(r["seq"]) for r in news_rows] == [n.seq for n in expected_news]
    for row, news in zip(news_rows, expected_news, strict=True):
        check_news(row, news)
    round_rows = read_rows(out / "rounds.csv")
    expected_rounds = [r for r in rounds(engine) if r.seq > after]
    assert [int(r["seq"]) for r in round_rows] == [r.seq for r in expected_rounds]
    for row, event in zip(round_rows, expected_rounds, strict=True):
        check_round(row, event)
    status_rows = read_rows(out / "status.csv")
    expected_statuses = [s for s in statuses(engine) if s.seq > after]
    assert [int(r["seq"]) for r in status_rows] == [s.seq for s in expected_statuses]
    for row, status in zip(status_rows, expected_statuses, strict=True):
        assert row["ts"] == iso(status.ts) and row["ts_ns"] == str(status.ts)
        assert (row["symbol"], row["status"], row["reason"]) == (
            status.symbol,
            status.status,
            status.reason,
        )
        assert row["until"] == ("" if status.until is None else str(status.until))


async def run_exporter(
    engine: FakeEngine, out: Path, **settings: Any
) -> tuple[Exporter, asyncio.Event, asyncio.Task[int]]:
    exporter = Exporter(
        upstream=engine.url, out_dir=out, settings=ExporterSection(flush_ms=20, **settings)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop))
    return exporter, stop, task


async def test_rows_are_exact_and_survive_a_restart(engine: FakeEngine, tmp_path: Path) -> None:
    rng = random.Random(1)
    liquidation_scenario(engine)
    random_flow(engine, rng, 200)
    operator_flow(engine, rng, 6)
    status_flow(engine, rng, 5)
    exporter, stop, task = await run_exporter(engine, tmp_path)
    await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
    random_flow(engine, rng, 200)  # live events after the history
    operator_flow(engine, rng, 6)
    status_flow(engine, rng, 5)
    await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
    stop.set()
    assert await asyncio.wait_for(task, seconds(5)) == 0
    assert engine.requests == [0]  # an empty directory asks for the whole history

    lines = (tmp_path / "trades.csv").read_text().splitlines()
    assert lines[0] == TRADES_COLUMNS
    assert (tmp_path / "performance.csv").read_text().splitlines()[0] == PERFORMANCE_COLUMNS
    assert any(line.endswith(",true") for line in lines)  # the liquidation's fills
    assert len(fills(engine)) > 50
    assert (tmp_path / "news.csv").read_text().splitlines()[0] == NEWS_COLUMNS
    assert (tmp_path / "rounds.csv").read_text().splitlines()[0] == ROUNDS_COLUMNS
    assert (tmp_path / "status.csv").read_text().splitlines()[0] == STATUS_COLUMNS
    assert len(statuses(engine)) == 10
    assert len(news_events(engine)) >= 5 and len(rounds(engine)) >= 2
    # one line per row (recovery reads tails line by line), even for a body with a newline
    assert any(n.body and "\n" in n.body for n in news_events(engine))
    news_lines = (tmp_path / "news.csv").read_text().splitlines()
    assert len(news_lines) == 1 + len(news_events(engine))
    assert_exactly_once(engine, tmp_path)
    assert json.loads((tmp_path / ".exporter-state.json").read_text()) == {"seq": engine.last_seq}

    # A restart resumes after the last seq: nothing twice, nothing missing.
    history_end = engine.last_seq
    random_flow(engine, rng, 150)
    operator_flow(engine, rng, 4)
    status_flow(engine, rng, 3)
    random_flow(engine, rng, 20)
    exporter, stop, task = await run_exporter(engine, tmp_path)
    await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
    stop.set()
    assert await asyncio.wait_for(task, seconds(5)) == 0
    assert engine.requests[1] == history_end  # resumed where the first run stopped
    assert_exactly_once(engine, tmp_path)


async def test_sampled_performance_keeps_the_first_update_per_account_and_interval(
    engine: FakeEngine, tmp_path: Path
) -> None:
    random_flow(engine, random.Random(2), 300)
    interval_ns = 2_000_000  # 2 ms of event time
    exporter, stop, task = await run_exporter(engine, tmp_path, performance_interval_ms=2)
    await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
    stop.set()
    await asyncio.wait_for(task, seconds(5))
    seen: dict[str, int] = {}
    expected = []
    for update in updates(engine):
        bucket = (update.ts or 0) // interval_ns
        if seen.get(update.account) != bucket:
            seen[update.account] = bucket
            expected.append(update.seq)
    rows = read_rows(tmp_path / "performance.csv")
    assert [int(r["seq"]) for r in rows] == expected
    assert len(expected) < len(updates(engine))


async def test_lost_history_is_reported_and_export_continues(
    engine: FakeEngine, tmp_path: Path
) -> None:
    rng = random.Random(3)
    random_flow(engine, rng, 100)
    operator_flow(engine, rng, 4)
    engine.history_floor = lost = engine.last_seq  # the engine no longer holds these
    exporter, stop, task = await run_exporter(engine, tmp_path)
    await engine.wait_for_requests(1)
    random_flow(engine, rng, 100)
    operator_flow(engine, rng, 4)
    await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
    stop.set()
    await asyncio.wait_for(task, seconds(5))
    assert exporter.history_gaps == 1 and engine.snapshots_sent == 1
    assert_exactly_once(engine, tmp_path, after=lost)


async def test_a_reset_engine_history_moves_the_old_files_aside(
    engine: FakeEngine, tmp_path: Path
) -> None:
    random_flow(engine, random.Random(4), 200)
    operator_flow(engine, random.Random(4), 5)
    exporter, stop, task = await run_exporter(engine, tmp_path)
    await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
    stop.set()
    await asyncio.wait_for(task, seconds(5))
    old_rows = len(read_rows(tmp_path / "trades.csv"))
    old_news = len(read_rows(tmp_path / "news.csv"))
    assert old_news > 0

    fresh = FakeEngine()  # a new data dir: seqs start again from 1
    await fresh.start()
    try:
        random_flow(fresh, random.Random(5), 50)
        operator_flow(fresh, random.Random(5), 2)
        assert fresh.last_seq < engine.last_seq
        exporter, stop, task = await run_exporter(fresh, tmp_path)
        await asyncio.wait_for(fresh.wait_for_requests(2), seconds(10))  # then it asks for 0
        await asyncio.wait_for(exporter.wait_durable(fresh.last_seq), seconds(10))
        stop.set()
        await asyncio.wait_for(task, seconds(5))
        assert fresh.requests == [engine.last_seq, 0]
        assert len(read_rows(tmp_path / "trades.csv.reset-1")) == old_rows
        assert len(read_rows(tmp_path / "news.csv.reset-1")) == old_news
        assert (tmp_path / "rounds.csv.reset-1").exists()
        assert_exactly_once(fresh, tmp_path)
    finally:
        await fresh.stop()


def metric(text: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, exactly) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


async def test_health_port_reports_readiness_and_row_counts(
    engine: FakeEngine, tmp_path: Path
) -> None:
    random_flow(engine, random.Random(8), 200)
    operator_flow(engine, random.Random(8), 4)
    exporter = Exporter(
        upstream=engine.url, out_dir=tmp_path, settings=ExporterSection(flush_ms=20)
    )
    health = HealthServer(exporter, "127.0.0.1", 0)
    port = await health.start()
    try:
        status, body = await http_get(port, "/healthz")
        assert (status, json.loads(body)) == (503, {"status": "starting"})  # not running yet
        stop = asyncio.Event()
        task = asyncio.create_task(exporter.run(stop))
        await asyncio.wait_for(exporter.wait_durable(engine.last_seq), seconds(10))
        status, body = await http_get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        status, body = await http_get(port, "/metrics")
        text = body.decode()
        assert status == 200
        assert metric(text, 'exporter_rows_written_total{file="trades.csv"}') == len(fills(engine))
        assert metric(text, 'exporter_rows_written_total{file="performance.csv"}') == len(
            updates(engine)
        )
        assert metric(text, 'exporter_rows_buffered{file="trades.csv"}') == 0
        assert metric(text, 'exporter_rows_written_total{file="news.csv"}') == len(
            news_events(engine)
        )
        assert metric(text, 'exporter_rows_written_total{file="rounds.csv"}') == len(rounds(engine))
        assert metric(text, "exporter_durable_seq") == engine.last_seq
        assert metric(text, "exporter_upstream_connected") == 1
        assert metric(text, "exporter_flush_seconds_count") >= 1
        status, body = await http_get(port, "/nope")
        assert status == 404 and json.loads(body)["code"] == "not_found"
        with pytest.raises(InvalidStatus) as refused:  # no WebSocket on this port
            async with connect(f"ws://127.0.0.1:{port}/"):
                pass
        assert refused.value.response.status_code == 404
        stop.set()
        assert await asyncio.wait_for(task, seconds(5)) == 0
    finally:
        await health.stop()


# ---------------------------------------------------------------------- real subprocesses


def write_config(path: Path, flush_ms: int) -> Path:
    path.write_text(f"[exporter]\nflush_ms = {flush_ms}\nperformance_interval_ms = 0\n")
    return path


async def spawn_exporter(
    engine: FakeEngine, out: Path, config: Path, logs: Path
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "--upstream",
        engine.url,
        "--out",
        str(out),
        "--config",
        str(config),
        "--log-dir",
        str(logs),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def state_seq(out: Path) -> int:
    try:
        return json.loads((out / ".exporter-state.json").read_text())["seq"]
    except (OSError, ValueError):
        return -1


async def eventually(predicate: Any, timeout: float) -> None:
    """Poll ``predicate`` (a file the subprocess writes) until true or ``timeout``."""
    async with asyncio.timeout(seconds(timeout)):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_sigkill_mid_stream_then_restart_writes_every_row_once(
    engine: FakeEngine, tmp_path: Path
) -> None:
    out, logs = tmp_path / "out", tmp_path / "logs"
    config = write_config(tmp_path / "system.toml", flush_ms=5)
    rng = random.Random(6)
    random_flow(engine, rng, 300)
    process = await spawn_exporter(engine, out, config, logs)
    try:
        await engine.wait_for_requests(1)
        # Kill it while it writes: once it is busy with a burst (some of it durable, more
        # arriving), kill -9.
        await eventually(lambda: state_seq(out) > 0, 10)
        before = engine.last_seq
        for _ in range(5):
            random_flow(engine, rng, 300)
            operator_flow(engine, rng, 3)
        await eventually(lambda: state_seq(out) > before, 10)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), seconds(5))
        random_flow(engine, rng, 200)  # the world moves on while it is down
        operator_flow(engine, rng, 3)
        process = await spawn_exporter(engine, out, config, logs)
        await eventually(lambda: state_seq(out) == engine.last_seq, 15)
        random_flow(engine, rng, 100)  # and live rows after the restart
        await eventually(lambda: state_seq(out) == engine.last_seq, 15)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), seconds(5))
    assert engine.requests[0] == 0 and (engine.requests[1] or 0) > 0
    assert_exactly_once(engine, out)


async def test_sigterm_flushes_and_exits_0_within_5_s(engine: FakeEngine, tmp_path: Path) -> None:
    out, logs = tmp_path / "out", tmp_path / "logs"
    config = write_config(tmp_path / "system.toml", flush_ms=600_000)  # only SIGTERM flushes
    random_flow(engine, random.Random(7), 300)
    operator_flow(engine, random.Random(7), 4)
    process = await spawn_exporter(engine, out, config, logs)
    await engine.wait_for_requests(1)
    await engine.ping_consumers()  # it has received every event
    assert read_rows(out / "trades.csv") == []  # nothing flushed yet
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), seconds(5)) == 0
    assert time.monotonic() - started < seconds(5)
    stopped = [
        json.loads(line)
        for line in (logs / "exporter.log").read_text().splitlines()
        if '"exporter_stopped"' in line
    ]
    assert stopped and stopped[-1]["seq"] == engine.last_seq
    assert state_seq(out) == engine.last_seq
    assert_exactly_once(engine, out)


async def test_port_flag_serves_healthz_and_a_bad_port_exits_2(
    engine: FakeEngine, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "system.toml", flush_ms=20)
    common = ["-m", "exporter", "--upstream", engine.url, "--out", str(tmp_path / "out")]
    common += ["--config", str(config), "--log-dir", str(tmp_path / "logs")]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    bad = await asyncio.create_subprocess_exec(
        sys.executable,
        *common,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "EXCHANGE_EXPORTER_PORT": "nine"},
    )
    _, stderr = await asyncio.wait_for(bad.communicate(), seconds(15))
    assert bad.returncode == 2
    assert stderr.decode().strip() == (
        "exporter: port 'nine' (EXCHANGE_EXPORTER_PORT or EXCHANGE_PORT) is not a valid int"
    )

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *common,
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), seconds(15))
        assert line.startswith(b"listening port=")
        port = int(line.split(b"=")[1])
        await engine.wait_for_requests(1)
        async with asyncio.timeout(seconds(10)):
            while (await http_get(port, "/healthz"))[0] != 200:
                await engine.ping_consumers()  # connected: wait for the next answer
    finally:
        child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), seconds(5)) == 0
