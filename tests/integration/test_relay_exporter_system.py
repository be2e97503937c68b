"""The relay and the exporter as real processes (``python -m marketdata``, ``python -m
exporter``) against the test event port, and in-process against the real engine
(``exchange.engine.EngineApp``) across an engine restart."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import msgspec

from exchange.engine import EngineApp
from exchange.protocol.codec import engine_event_decoder
from exchange.protocol.messages import AccountUpdate, BookDelta, Fill
from exporter.service import Exporter
from marketdata.__main__ import instrument_infos
from marketdata.server import MarketDataRelay
from tests.integration.clients import command_client, config_with, event_client, http_get
from tests.integration.fake_engine import MONITOR_TOKEN, FakeEngine, random_flow
from tests.integration.feed_client import FeedClient
from tests.integration.test_exporter import assert_exactly_once, check_trade, read_rows
from tests.support import REPO_ROOT, seconds


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


async def listening_port(process: asyncio.subprocess.Process) -> int:
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), seconds(10))
        assert line, "exited before listening"
        if line.startswith(b"listening"):
            fields = dict(part.split("=") for part in line.decode().split()[1:])
            return int(fields["port"])


async def terminate(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), seconds(5))


async def test_relay_and_exporter_processes(tmp_path: Path) -> None:
    engine = FakeEngine()
    await engine.start()
    config = tmp_path / "system.toml"
    config.write_text(
        "[marketdata]\nheartbeat_ms = 50\n"
        f'monitor_tokens = ["{MONITOR_TOKEN}"]\n'
        "[exporter]\nflush_ms = 20\n"
    )
    out, logs = tmp_path / "out", tmp_path / "logs"
    rng = random.Random(21)
    random_flow(engine, rng, 200)
    relay = await spawn(
        "marketdata", "--port", "0", "--upstream", engine.url, "--config", str(config),
        "--log-dir", str(logs),
    )  # fmt: skip
    exporter = await spawn(
        "exporter", "--upstream", engine.url, "--out", str(out), "--config", str(config),
        "--log-dir", str(logs),
    )  # fmt: skip
    try:
        port = await listening_port(relay)
        await engine.wait_for_requests(2)
        feed = await FeedClient.open(f"ws://127.0.0.1:{port}", depth=1000)
        await feed.subscribe("book.*", "trades.*", "accounts", token=MONITOR_TOKEN)
        first_live = engine.last_seq
        random_flow(engine, rng, 300)
        await feed.sync(engine.last_book_seq)
        for symbol in ("AAA", "BBB"):
            bids, asks = feed.books[symbol].ladder()
            assert (bids, asks) == engine.depth(symbol)
        fills = [e for e in engine.events if type(e) is Fill and e.seq > first_live]
        assert [t["trade_id"] for t in feed.trades] == [f.trade_id for f in fills]
        status, body = await http_get(port, "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, body = await http_get(port, "/metrics")
        assert status == 200 and b'marketdata_subscribers{channel="accounts"} 1.0' in body

        async with asyncio.timeout(seconds(10)):  # the exporter's state file says it is done
            while (
                not (out / ".exporter-state.json").exists()
                or json.loads((out / ".exporter-state.json").read_text())["seq"] != engine.last_seq
            ):
                await asyncio.sleep(0.02)  # polling a file for a condition
        assert_exactly_once(engine, out)
        await feed.close()
    finally:
        codes = [await terminate(relay), await terminate(exporter)]
        await engine.stop()
    assert codes == [0, 0]


async def test_against_the_real_engine_across_a_restart(tmp_path: Path) -> None:
    config = config_with(marketdata={"heartbeat_ms": 50, "monitor_tokens": [MONITOR_TOKEN]})
    engine = EngineApp(config, data_dir=tmp_path / "data")
    await engine.start()
    relay = MarketDataRelay(
        upstream=f"ws://127.0.0.1:{engine.event_port}",
        instruments=instrument_infos(config),
        settings=config.marketdata,
        port=0,
    )
    await relay.start()
    exporter = Exporter(
        upstream=f"ws://127.0.0.1:{engine.event_port}",
        out_dir=tmp_path / "out",
        settings=msgspec.structs.replace(config.exporter, flush_ms=20),
    )
    stop = asyncio.Event()
    exporting = asyncio.create_task(exporter.run(stop))
    rng = random.Random(5)
    accounts = ["alice", "bob", "carol", "maker1", "maker2"]

    async def trade(count: int) -> None:
        async with command_client(engine.command_port) as gateway:
            for _ in range(count):
                side = rng.choice(["buy", "sell"])
                offset = rng.randint(-5, 15) * (-1 if side == "buy" else 1)
                command: dict[str, Any] = {
                    "type": "new_order",
                    "symbol": "AAPL",
                    "side": side,
                    "qty": rng.randint(1, 10),
                    "price": round(190 + offset * 0.01, 2),
                }
                await gateway.submit(rng.choice(accounts), command)

    async def all_events(since: int = 0) -> list[Any]:
        """Every event after ``since`` up to the engine's last, from its event port."""
        async with event_client(engine.event_port, since=since) as stream:
            events: list[Any] = []
            while not events or events[-1].seq < engine.core.last_seq:
                frame = await asyncio.wait_for(stream.ws.recv(decode=False), seconds(5))
                if frame.startswith(b"["):
                    events.extend(engine_event_decoder.decode(frame))
            return events

    try:
        await asyncio.wait_for(relay.synced.wait(), seconds(5))
        feed = await FeedClient.open(f"ws://127.0.0.1:{relay.port}", depth=1000)
        await feed.subscribe("book.AAPL", "trades.AAPL")
        await trade(150)
        ports = engine.command_port, engine.event_port
        history = await all_events()
        # The engine restarts (same state, same ports): the relay and the exporter resume.
        await engine.stop()
        engine = EngineApp(config, core=engine.core, command_port=ports[0], event_port=ports[1])
        await engine.start()
        await trade(150)
        history += await all_events(history[-1].seq)
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        last_book = max(e.seq for e in history if type(e) is BookDelta)
        await feed.sync({"AAPL": last_book}, timeout=10)
        book = engine.core.book("AAPL")
        assert book is not None
        bids, asks = book.depth(None)
        to_price = book.instrument.to_price
        assert feed.books["AAPL"].ladder() == (
            [[to_price(p), q] for p, q in bids],
            [[to_price(p), q] for p, q in asks],
        )
        assert len(feed.snapshots) == 1  # resumed by seq: no resync was needed
        fills = [e for e in history if type(e) is Fill]
        assert [t["seq"] for t in feed.trades] == [f.seq for f in fills]

        last = history[-1].seq
        await asyncio.wait_for(exporter.wait_durable(last), seconds(10))
        trades = read_rows(tmp_path / "out" / "trades.csv")
        assert [int(r["seq"]) for r in trades if int(r["seq"]) <= last] == [f.seq for f in fills]
        for row, fill in zip(trades, fills, strict=False):
            check_trade(row, fill)
        performance = read_rows(tmp_path / "out" / "performance.csv")
        updates = [e.seq for e in history if type(e) is AccountUpdate]
        assert [int(r["seq"]) for r in performance if int(r["seq"]) <= last] == updates
        await feed.close()
    finally:
        stop.set()
        assert await asyncio.wait_for(exporting, seconds(5)) == 0
        await relay.stop()
        await engine.stop()
