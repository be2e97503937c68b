"""``python -m bots.tournament`` on the live venue: real processes (engine, gateway, relay,
exporter, three ``python -m bots`` from the Procfile, the tournament itself), every port 0.

- three short rounds: numbered 1..3, every account reset to the round's cash at each start,
  the standings printed; ``leaderboard.csv`` is what the exporter's CSV files say, cut into
  rounds at the ``round_started`` and final ``leaderboard`` seqs, and the relay's final
  leaderboard of each round agrees with it;
- bad input: no gateway, a refused key, an account's key: one line, exit 2;
- kill -9 of the engine mid-round: after the restart the round and its statistics are what
  they were, and the tournament goes on to the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from tests.acceptance.harness import (
    config_file,
    engine_argv,
    exporter_argv,
    kill,
    read_csv,
    wait_exported,
)
from tests.integration.feed_client import FeedClient
from tests.integration.live_system import LiveSystem, live_system, procfile_command
from tests.support import seconds

BOTS = ("maker1", "mm1", "taker1")
CASH = 1_000_000.0
SYSTEM_ACCOUNTS = {"insurance_fund"}


class Recorder:
    """Every message of the relay's ``rounds`` (and ``trades.AAPL``) channels, in order."""

    def __init__(self, feed: FeedClient) -> None:
        self.feed = feed
        self.messages: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await self.feed.read(timeout=3600)
            async with self.changed:
                self.messages.append(message)
                self.changed.notify_all()

    async def wait(self, predicate: Any, timeout: float) -> dict[str, Any]:
        """The first message (from the start) that ``predicate`` accepts."""

        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages if predicate(m)), None)

        async with asyncio.timeout(seconds(timeout)), self.changed:
            await self.changed.wait_for(lambda: found() is not None)
        message = found()
        assert message is not None
        return message

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.feed.close()


async def start_venue(system: LiveSystem) -> Recorder:
    """Exporter and bots started; returns a recorder of the relay once the bots trade."""
    await system.start("exporter", exporter_argv(system))
    for bot in BOTS:
        await system.start(bot, procfile_command(bot) + system.urls)
    feed = await FeedClient.open(f"ws://127.0.0.1:{system.marketdata_port}")
    await feed.subscribe("rounds", "trades.AAPL")
    recorder = Recorder(feed)
    await recorder.wait(lambda m: m["type"] == "trade", timeout=30)
    return recorder


def tournament_argv(system: LiveSystem, rounds: int, seconds_each: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bots.tournament",
        "--rounds",
        str(rounds),
        "--seconds",
        str(seconds_each),
        "--cash",
        str(CASH),
        "--gateway",
        f"ws://127.0.0.1:{system.gateway_port}",
        "--marketdata",
        f"ws://127.0.0.1:{system.marketdata_port}",
        *system.config_args,
        "--out",
        str(system.tmp / "tournament"),
        "--exporter-out",
        str(system.tmp / "out"),
    ]


async def finish(system: LiveSystem, timeout: float) -> tuple[int, str]:
    """The tournament's exit code and stdout."""
    code = await asyncio.wait_for(system.processes["tournament"].wait(), seconds(timeout))
    return code, (system.tmp / "tournament.out").read_text()


def in_span(rows: list[dict[str, str]], start: int, end: int) -> list[dict[str, str]]:
    return [row for row in rows if start < int(row["seq"]) < end]


def expected_standings(
    out: Path, span: dict[str, Any]
) -> dict[str, tuple[float, int, dict[str, str], dict[str, str]]]:
    """Per account: (pnl, trades, first row, last row) as the exporter's files say for
    ``span``."""
    performance = in_span(read_csv(out / "performance.csv"), span["start_seq"], span["end_seq"])
    trades = in_span(read_csv(out / "trades.csv"), span["start_seq"], span["end_seq"])
    first: dict[str, dict[str, str]] = {}
    last: dict[str, dict[str, str]] = {}
    for row in performance:
        if row["account"] not in SYSTEM_ACCOUNTS:
            first.setdefault(row["account"], row)
            last[row["account"]] = row
    result = {}
    for account, row in last.items():
        fills = sum(1 for t in trades if account in (t["buy_account"], t["sell_account"]))
        pnl = round(float(row["equity"]) - span["cash"], 8)
        result[account] = (pnl, fills, first[account], row)
    return result


async def test_three_rounds_ranked_from_the_exporters_files(tmp_path: Path) -> None:
    config = config_file(
        tmp_path / "system.toml", leaderboard_interval_ms=200, mark_interval_ms=200
    )
    async with live_system(tmp_path, config) as system:
        recorder = await start_venue(system)
        try:
            await system.start("tournament", tournament_argv(system, 3, 2.5))
            code, stdout = await finish(system, timeout=60)
            assert code == 0, system.stderr("tournament")
            spans = json.loads((tmp_path / "tournament" / "rounds.json").read_text())
            await wait_exported(tmp_path / "out", spans[-1]["end_seq"], timeout=10)
            starts = [m for m in recorder.messages if m["type"] == "round_started"]
        finally:
            await recorder.close()

    # Rounds 1..3, each as the relay announced it, its final standings printed.
    assert [s["venue_round"] for s in spans] == [1, 2, 3]
    assert [s["round"] for s in spans] == [1, 2, 3]
    assert [(m["round"], m["name"], m["cash"], m["seq"]) for m in starts] == [
        (s["round"], s["name"], CASH, s["start_seq"]) for s in spans
    ]
    for span in spans:
        assert f"round {span['round']}/3 'round-{span['round']}'" in stdout
        assert span["start_seq"] < span["end_seq"]
    assert "rank  bot" in stdout and "files in" in stdout

    out = tmp_path / "out"
    board = read_csv(tmp_path / "tournament" / "leaderboard.csv")
    assert list(board[0]) == [
        "round",
        "rank",
        "bot",
        "strategy",
        "status",
        "pnl",
        "return_pct",
        "sharpe",
        "max_drawdown",
        "fees",
        "trades",
        "volume",
        "liquidations",
        "errors",
    ]
    traded = 0
    for span in spans:
        truth = expected_standings(out, span)
        # Every account began the round afresh: its first update of the round has the
        # round's cash and no position (the bots got round_started, then this update).
        for account in BOTS:
            first = truth[account][2]
            assert (float(first["cash"]), float(first["equity"]), first["positions"]) == (
                CASH,
                CASH,
                "",
            ), (span["round"], first)
        mine = [row for row in board if row["round"] == str(span["round"])]
        assert {row["bot"] for row in mine} == set(truth)
        for row in mine:
            pnl, fills, _, _ = truth[row["bot"]]
            assert float(row["pnl"]) == pnl, (span["round"], row, pnl)
            assert int(row["trades"]) == fills, (span["round"], row, fills)
            assert row["status"] == "ok"
            traded += fills
        pnls = [float(row["pnl"]) for row in mine]
        assert pnls == sorted(pnls, reverse=True)
        assert [int(row["rank"]) for row in mine] == list(range(1, len(mine) + 1))

        # The relay's final leaderboard of the round says the same: the engine marks every
        # account to market just before it ranks them, so each row equals the account's last
        # account_update before it (performance.csv's last row in the round): same accounts,
        # fills, pnl and order.
        final = {row["account"]: row for row in span["leaderboard"]}
        assert set(final) == set(truth)
        for account, (pnl, fills, _, _) in truth.items():
            assert final[account]["trades"] == fills, (span["round"], account)
            assert final[account]["pnl"] == pnl, (span["round"], account)
        relay_order = [row["account"] for row in span["leaderboard"]]
        assert relay_order == [row["bot"] for row in mine], span["round"]
    assert traded > 0, "nobody traded: the test proves little"

    overall = [row for row in board if row["round"] == "all"]
    assert {row["bot"] for row in overall} == {row["bot"] for row in board if row["round"] == "1"}
    for row in overall:
        mine = [r for r in board if r["bot"] == row["bot"] and r["round"] != "all"]
        assert abs(float(row["pnl"]) - sum(float(r["pnl"]) for r in mine)) < 1e-6
        assert int(row["trades"]) == sum(int(r["trades"]) for r in mine)
    slice_rows = read_csv(tmp_path / "tournament" / "round-2" / "trades.csv")
    assert slice_rows == in_span(
        read_csv(out / "trades.csv"), spans[1]["start_seq"], spans[1]["end_seq"]
    )


async def test_bad_input_exits_2_and_ctrl_c_keeps_the_complete_rounds(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        cases = {
            "no-gateway": ["--gateway", "ws://127.0.0.1:1"],
            "bad-key": ["--api-key", "nobody-key"],
            "account-key": ["--api-key", "alice-key"],
        }
        for name, extra in cases.items():
            await system.start(name, [*tournament_argv(system, 1, 1), *extra])
        for name, expected in (
            ("no-gateway", "cannot reach the gateway"),
            ("bad-key", "auth_failed"),
            ("account-key", "forbidden"),
        ):
            code = await asyncio.wait_for(system.processes[name].wait(), seconds(20))
            lines = system.stderr(name).strip().splitlines()
            assert code == 2 and len(lines) == 1 and expected in lines[0], (name, lines)
        assert not (tmp_path / "tournament").exists()

        # Ctrl-C in round 2 of 5: round 1 is complete, so it is ranked and written.
        await system.start("exporter", exporter_argv(system))
        feed = await FeedClient.open(f"ws://127.0.0.1:{system.marketdata_port}")
        await feed.subscribe("rounds")
        recorder = Recorder(feed)
        try:
            await system.start("tournament", tournament_argv(system, 5, 1))
            await recorder.wait(lambda m: m["type"] == "round_started" and m["round"] == 2, 20)
            system.processes["tournament"].send_signal(signal.SIGINT)
            code, stdout = await finish(system, timeout=40)
        finally:
            await recorder.close()
        assert code == 130, system.stderr("tournament")
        assert "interrupted after 1 complete round" in system.stderr("tournament")
        spans = json.loads((tmp_path / "tournament" / "rounds.json").read_text())
        assert [s["round"] for s in spans] == [1]
        board = read_csv(tmp_path / "tournament" / "leaderboard.csv")
        assert {row["round"] for row in board} == {"1", "all"}
        assert "round 1/5 'round-1'" in stdout and "round 2/5" not in stdout


async def test_the_tournament_survives_a_kill_9_of_the_engine(tmp_path: Path) -> None:
    config = config_file(tmp_path / "system.toml", leaderboard_interval_ms=200)
    async with live_system(tmp_path, config) as system:
        recorder = await start_venue(system)
        try:
            await system.start("tournament", tournament_argv(system, 2, 4))
            started = await recorder.wait(lambda m: m["type"] == "round_started", timeout=20)
            # Standings of round 1 with some trading in them, then the crash.
            before = await recorder.wait(
                lambda m: (
                    m["type"] == "leaderboard"
                    and m["round"] == 1
                    and sum(r["trades"] for r in m["rows"]) > 0
                ),
                timeout=10,
            )
            await kill(system, "engine")
            await system.start("engine", engine_argv(system), wait_listening=True)
            # The first standings the restarted engine published (seqs go on from the
            # journal, so they are above every seq of the one that was killed).
            last = max(m["seq"] for m in recorder.messages if m["type"] == "leaderboard")
            after = await recorder.wait(
                lambda m: m["type"] == "leaderboard" and m["seq"] > last, timeout=20
            )
            recovered = [e for e in system.log_events("engine") if e["event"] == "engine_recovered"]
            assert recovered, "the engine did not recover from its journal"
            # The round and its statistics came back from the snapshot and journal.
            assert after["round"] == 1
            was = {row["account"]: row for row in before["rows"]}
            for row in after["rows"]:
                assert row["trades"] >= was[row["account"]]["trades"], row
                assert row["max_drawdown"] >= was[row["account"]]["max_drawdown"], row
            await wait_exported(tmp_path / "out", after["seq"], timeout=20)
            fills = in_span(read_csv(tmp_path / "out" / "trades.csv"), started["seq"], after["seq"])
            for row in after["rows"]:
                mine = [f for f in fills if row["account"] in (f["buy_account"], f["sell_account"])]
                assert row["trades"] == len(mine), row

            code, stdout = await finish(system, timeout=90)
            assert code == 0, system.stderr("tournament")
            second = await recorder.wait(
                lambda m: m["type"] == "round_started" and m["round"] == 2, timeout=5
            )
            assert second["name"] == "round-2"
        finally:
            await recorder.close()
    spans = json.loads((tmp_path / "tournament" / "rounds.json").read_text())
    assert [s["venue_round"] for s in spans] == [1, 2]
    assert "round 2/2 'round-2'" in stdout
    board = read_csv(tmp_path / "tournament" / "leaderboard.csv")
    assert {row["round"] for row in board} == {"1", "2", "all"}
