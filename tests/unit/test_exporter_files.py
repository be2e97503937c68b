"""Exporter rows and crash recovery, in memory and on temporary files (no sockets).

Each recovery test leaves the files as a crash at one particular instant would, then checks
that resuming writes every row exactly once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from exchange.protocol.messages import (
    AccountUpdate,
    Fill,
    MarketStatus,
    News,
    Position,
    RoundStarted,
)
from exporter.csv_rows import (
    NEWS_HEADER,
    ROUNDS_HEADER,
    STATUS_HEADER,
    header_line,
    iso_ts,
    news_row,
    number,
    performance_row,
    positions_field,
    round_row,
    status_row,
    trade_row,
)
from exporter.state import HEADERS, STATE_FILE, recover, write_state
from exporter.writer import CsvSink, PerformanceSampler

TS = 1_714_564_800_123_456_789  # 2024-05-01T12:00:00.123456789Z


def fill(seq: int, ts: int = TS, **kw: Any) -> Fill:
    fields: dict[str, Any] = {
        "symbol": "AAPL",
        "trade_id": seq * 10,
        "price": 101.25,
        "qty": 3,
        "aggressor": "sell",
        "buy_account": "alice",
        "sell_account": "bob, inc",
        "buy_order_id": 7,
        "sell_order_id": 8,
        "buy_fee": -0.0303,
        "sell_fee": 1e-08,
        "liquidation": False,
        "ts": ts,
        "seq": seq,
    }
    fields.update(kw)
    return Fill(**fields)


def update(seq: int, account: str = "alice", ts: int = TS) -> AccountUpdate:
    positions = [
        Position("MSFT", -5, 420.0, 421.0, 0.0, -5.0),
        Position("AAPL", 10, 101.08333333333334, 101.0, 2.5, -0.83),
        Position("BTC", 0, 0.0, 65000.0, 12.0, 0.0),
    ]
    return AccountUpdate(
        account,
        99_000.5,
        98_994.67,
        14.5,
        -5.83,
        0.25,
        1505.0,
        752.5,
        97_489.67,
        positions,
        ts=ts,
        seq=seq,
    )


def news(seq: int, ts: int = TS, **kw: Any) -> News:
    fields: dict[str, Any] = {
        "news_id": seq * 100,
        "headline": "AAPL beats, guides up",
        "body": None,
        "symbols": ["AAPL", "MSFT"],
        "sentiment": 0.75,
        "shock": None,
        "ts": ts,
        "seq": seq,
    }
    fields.update(kw)
    return News(**fields)


def round_started(seq: int, ts: int = TS, **kw: Any) -> RoundStarted:
    fields: dict[str, Any] = {"round": seq, "name": "heat 1", "cash": 100_000.0}
    fields.update(kw)
    return RoundStarted(ts=ts, seq=seq, **fields)


def market_status(seq: int, ts: int = TS, **kw: Any) -> MarketStatus:
    fields: dict[str, Any] = {
        "symbol": "AAPL",
        "status": "halted",
        "reason": "admin",
        "until": ts + 20 * 10**9,
    }
    fields.update(kw)
    return MarketStatus(ts=ts, seq=seq, **fields)


def notes() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    seen: list[tuple[str, dict[str, Any]]] = []
    return seen, lambda event, **details: seen.append((event, details))


def test_trade_row_is_exactly_the_contract() -> None:
    assert trade_row(fill(5, liquidation=True)) == [
        "2024-05-01T12:00:00.123456789Z",
        str(TS),
        "5",
        "50",
        "AAPL",
        "101.25",
        "3",
        "sell",
        "alice",
        "bob, inc",
        "7",
        "8",
        "-0.0303",
        "0.00000001",
        "true",
    ]


def test_performance_row_and_positions() -> None:
    row = performance_row(update(9))
    assert row == [
        "2024-05-01T12:00:00.123456789Z",
        str(TS),
        "9",
        "alice",
        "99000.5",
        "14.5",
        "-5.83",
        "0.25",
        "98994.67",
        "1505.0",
        "752.5",
        "AAPL:10@101.08333333;MSFT:-5@420.0",  # avg_px rounded half-even to 8 decimals
    ]
    assert positions_field([]) == ""


def test_news_row_is_exactly_the_documented_columns() -> None:
    assert header_line(NEWS_HEADER) == (
        "ts,ts_ns,seq,news_id,headline,symbols,sentiment,shock,body\n"
    )
    assert news_row(news(4)) == [
        "2024-05-01T12:00:00.123456789Z",
        str(TS),
        "4",
        "400",
        "AAPL beats, guides up",
        "AAPL;MSFT",
        "0.75",
        "",  # no shock
        "",  # no body
    ]
    row = news_row(
        news(5, symbols=[], sentiment=-1.0, shock=-0.05, body='line 1\r\nline "2"\nend\r')
    )
    assert row[5:] == ["", "-1.0", "-0.05", 'line 1 line "2" end ']
    assert news_row(news(6, headline="two\nlines", sentiment=0.0, shock=1e-08))[4:8] == [
        "two lines",
        "AAPL;MSFT",
        "0.0",
        "0.00000001",
    ]


def test_status_row_is_exactly_the_documented_columns() -> None:
    assert header_line(STATUS_HEADER) == "ts,ts_ns,seq,symbol,status,reason,until\n"
    assert status_row(market_status(7)) == [
        "2024-05-01T12:00:00.123456789Z",
        str(TS),
        "7",
        "AAPL",
        "halted",
        "admin",
        str(TS + 20 * 10**9),
    ]
    opened = market_status(8, status="open", reason="circuit_breaker", until=None)
    assert status_row(opened)[3:] == ["AAPL", "open", "circuit_breaker", ""]


def test_round_row_is_exactly_the_documented_columns() -> None:
    assert header_line(ROUNDS_HEADER) == "ts,ts_ns,seq,round,name,cash\n"
    assert round_row(round_started(3, cash=25_000.5)) == [
        "2024-05-01T12:00:00.123456789Z",
        str(TS),
        "3",
        "3",
        "heat 1",
        "25000.5",
    ]
    assert round_row(round_started(4, name="", cash=1e6))[4:] == ["", "1000000.0"]


def test_numbers_and_timestamps() -> None:
    assert [number(x) for x in (0.0, -0.0, 1e-08, 1.5e-05, 1e16, 42, -3, 0.1)] == [
        "0.0",
        "0.0",
        "0.00000001",
        "0.000015",
        "10000000000000000.0",
        "42",
        "-3",
        "0.1",
    ]
    assert iso_ts(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_ts(TS + 1) == "2024-05-01T12:00:00.123456790Z"


def sink_with(
    out: Path,
    fills: list[int],
    updates: list[int],
    processed: int,
    news_seqs: tuple[int, ...] = (),
    round_seqs: tuple[int, ...] = (),
    status_seqs: tuple[int, ...] = (),
) -> None:
    """Write rows for these seqs and a state file, as a finished earlier run would."""
    _seen, note = notes()
    sink = CsvSink(out, recover(out, note))
    for seq in fills:
        sink.add_fill(fill(seq))
    for seq in updates:
        sink.add_account_update(update(seq))
    for seq in news_seqs:
        sink.add_news(news(seq))
    for seq in round_seqs:
        sink.add_round(round_started(seq))
    for seq in status_seqs:
        sink.add_status(market_status(seq))
    sink.advance(processed)
    sink.close()


def seqs(path: Path) -> list[int]:
    return [int(line.split(",")[2]) for line in path.read_text().splitlines()[1:]]


def replay(out: Path, fills: list[int], updates: list[int], through: int) -> tuple[int, list[Any]]:
    """Restart: recover, then feed every event after ``since`` (as the engine would)."""
    seen, note = notes()
    resume = recover(out, note)
    sink = CsvSink(out, resume)
    for seq in range(resume.since + 1, through + 1):
        if seq in fills:
            sink.add_fill(fill(seq))
        if seq in updates:
            sink.add_account_update(update(seq))
        if seq in NEWS:
            sink.add_news(news(seq, body="first\nsecond"))
        if seq in ROUNDS:
            sink.add_round(round_started(seq))
        if seq in STATUS:
            sink.add_status(market_status(seq, status="auction", until=None))
    sink.advance(through)
    sink.close()
    return resume.since, seen


FILLS = [2, 5, 9, 12]
UPDATES = [3, 6, 7, 10, 13]
NEWS = [4, 11]
ROUNDS = [8]
STATUS = [1, 14]


def assert_every_file_once(out: Path) -> None:
    """Each file holds exactly its events' rows, in seq order, each a well-formed row."""
    expected = {"trades.csv": FILLS, "performance.csv": UPDATES}
    expected |= {"news.csv": NEWS, "rounds.csv": ROUNDS, "status.csv": STATUS}
    for name, header in HEADERS.items():
        with (out / name).open(newline="") as file:
            rows = list(csv.reader(file))
        assert rows[0] == list(header), name
        assert all(len(row) == len(header) for row in rows), name
        assert [int(row[2]) for row in rows[1:]] == expected[name], name


def test_clean_restart_resumes_at_the_state_seq(tmp_path: Path) -> None:
    sink_with(
        tmp_path, [2, 5], [3, 6, 7], processed=8, news_seqs=(4,), round_seqs=(8,), status_seqs=(1,)
    )
    since, seen = replay(tmp_path, FILLS, UPDATES, 14)
    assert since == 8 and seen == []
    assert_every_file_once(tmp_path)


def test_crash_after_the_csv_writes_before_the_state_write(tmp_path: Path) -> None:
    sink_with(
        tmp_path,
        [2, 5, 9],
        [3, 6, 7, 10],
        processed=10,
        news_seqs=(4,),
        round_seqs=(8,),
        status_seqs=(1,),
    )
    write_state(tmp_path, 3)  # the state of the flush before: it lags the files
    since, _ = replay(tmp_path, FILLS, UPDATES, 14)
    assert since == 3
    assert_every_file_once(tmp_path)


def test_crash_between_the_two_csv_writes(tmp_path: Path) -> None:
    sink_with(tmp_path, [2, 5], [3], processed=3, status_seqs=(1,))
    # trades.csv and performance.csv got the next flush; news.csv and rounds.csv did not
    sink_with(tmp_path, [9, 12], [6, 7, 10], processed=3)
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {"seq": 3}
    replay(tmp_path, FILLS, UPDATES, 14)
    assert_every_file_once(tmp_path)


def test_crash_mid_row_cuts_the_partial_line(tmp_path: Path) -> None:
    sink_with(
        tmp_path,
        [2, 5, 9],
        [3, 6, 7],
        processed=9,
        news_seqs=(4,),
        round_seqs=(8,),
        status_seqs=(1,),
    )
    with (tmp_path / "trades.csv").open("a") as file:
        file.write("2024-05-01T12:00:00.1234")  # torn write
    with (tmp_path / "performance.csv").open("a") as file:
        file.write("\x00\x00\x00\n")  # garbage a power cut can leave
    with (tmp_path / "news.csv").open("a") as file:
        file.write(f'2024-05-01T12:00:00.123456789Z,{TS},11,1100,"torn, quoted')
    _since, seen = replay(tmp_path, FILLS, UPDATES, 14)
    assert {event for event, _ in seen} == {"csv_tail_repaired"}
    assert len(seen) == 3
    assert_every_file_once(tmp_path)


def test_a_missing_file_is_rebuilt_from_the_start(tmp_path: Path) -> None:
    sink_with(
        tmp_path,
        [2, 5, 9],
        [3, 6, 7],
        processed=9,
        news_seqs=(4,),
        round_seqs=(8,),
        status_seqs=(1,),
    )
    (tmp_path / "performance.csv").unlink()
    since, _ = replay(tmp_path, FILLS, UPDATES, 14)
    assert since == 0
    assert_every_file_once(tmp_path)


def test_a_directory_from_before_news_and_rounds_gets_them_from_the_history(
    tmp_path: Path,
) -> None:
    # An --out directory written by an exporter that knew only trades.csv and performance.csv.
    sink_with(tmp_path, [2, 5, 9], [3, 6, 7], processed=9)
    (tmp_path / "news.csv").unlink()
    (tmp_path / "rounds.csv").unlink()
    (tmp_path / "status.csv").unlink()
    since, _ = replay(tmp_path, FILLS, UPDATES, 14)
    assert since == 0  # the new files need the whole history; the old ones skip what they hold
    assert_every_file_once(tmp_path)


def test_foreign_and_torn_headers(tmp_path: Path) -> None:
    (tmp_path / "trades.csv").write_text("a,b,c\n1,2,3\n")
    (tmp_path / "performance.csv").write_text("ts,ts_ns,se")
    seen, note = notes()
    resume = recover(tmp_path, note)
    assert resume.since == 0 and not any(t.existed for t in resume.files.values())
    assert (tmp_path / "trades.csv.1.bad").read_text() == "a,b,c\n1,2,3\n"
    assert [event for event, _ in seen] == ["csv_header_mismatch"]
    replay(tmp_path, FILLS, UPDATES, 14)
    assert_every_file_once(tmp_path)


def test_long_files_and_the_sampler_tail(tmp_path: Path) -> None:
    interval = 2_000_000  # 2 ms; an update every 1 µs: 2000 updates of 500 accounts a bucket
    _seen, note = notes()
    sink = CsvSink(tmp_path, recover(tmp_path, note), performance_interval_ms=2)
    ts = TS - TS % interval
    for seq in range(1, 5001):
        sink.add_account_update(update(seq, f"acct{seq % 500}", ts + seq * 1000))
    sink.advance(5000)
    sink.close()
    rows = (tmp_path / "performance.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 * 500  # one row per account per bucket
    # The last bucket's rows (~75 KB) exceed recovery's first 64 KiB read: it reads more.
    resume = recover(tmp_path, note, tail_ns=interval)
    tail = resume.files["performance.csv"]
    assert resume.since == 5000 and tail.last_seq == 4499
    assert {row[3] for row in tail.tail_rows} == {f"acct{i}" for i in range(500)}
    sampler = PerformanceSampler(interval, tail.tail_rows)
    last_ts = ts + 5000 * 1000
    assert not any(sampler.accept(f"acct{i}", last_ts) for i in range(500))
    assert sampler.accept("acct0", last_ts + interval)
