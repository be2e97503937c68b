#!/usr/bin/env python
"""End-to-end benchmark of the running system: real processes, real sockets.

Starts the engine, one gateway and the market-data relay as subprocesses (port 0, a fresh
data directory, a generated config with many accounts and no rate limit), then measures:

  fixed    N client connections offering a fixed total rate of new orders (each followed by
           its cancel, so the book stays small); ack latency = time from sending a new_order
           to receiving its `new` execution report (perf_counter_ns stamps, hdrhistogram);
           with --watchers W, W relay subscribers on every book, trade and BBO channel read
           the feed meanwhile (in a process of their own).
  saturate the same clients send batches (JSON arrays) as fast as the system acknowledges
           them, with a bounded number of batches in flight per connection; acked orders/s.
  fanout   S relay subscribers on book.* and trades.* while orders flow; events delivered
           per subscriber per second and the delay from the engine's event ts to receipt.
  rest     (--rest, instead of the above) orders POSTed over N keep-alive HTTP connections:
           request latency at --rest-rate orders/s, then acknowledged orders/s back to back.

Usage: .venv/bin/python scripts/bench_e2e.py [--clients 8] [--rate 5000] [--seconds 5]
       [--batch 50] [--subscribers 100] [--watchers 0] [--rest [--rest-rate 1000]]
       [--fsync batch|none|always]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import websockets
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parent.parent
SYMBOL = "BENCH"
_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode


def _encode(message: Any) -> str:
    """A message as a JSON text frame (bytes would go out as a binary frame)."""
    return _json_encode(message).decode()


def write_config(directory: Path, accounts: int) -> Path:
    lines = [
        "[[instruments]]",
        f'symbol = "{SYMBOL}"',
        "tick_size = 0.01",
        "reference_price = 100.0",
        "price_band = 0.5",
        "max_order_qty = 100000",
        "max_position = 100000000",
        "",
        "[gateway]",
        "orders_per_second = 10000000.0",
        "burst = 10000000",
        "",
        "[engine]",
        "mark_interval_ms = 1000",
    ]
    for n in range(accounts):
        lines += [
            "",
            "[[accounts]]",
            f'name = "bench{n}"',
            "cash = 1000000000.0",
            f'api_key = "bench{n}-key"',
            "max_open_orders = 1000000",
        ]
    path = directory / "bench.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    ports: dict[str, int] = field(default_factory=dict)


def start(name: str, args: list[str], env: dict[str, str]) -> Process:
    popen = subprocess.Popen(
        [sys.executable, "-m", name, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert popen.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited before listening")
        if line.startswith("listening"):
            ports = dict(part.split("=") for part in line.split()[1:])
            return Process(name, popen, {k: int(v) for k, v in ports.items()})
    raise RuntimeError(f"{name} did not start")


def stop(process: Process) -> None:
    process.popen.terminate()
    try:
        process.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.popen.kill()


def start_system(directory: Path, accounts: int, fsync: str = "engine-default") -> list[Process]:
    """Engine, gateway (WebSocket and REST on port 0) and relay as processes on a generated
    config in ``directory``; returns them in start order. Stops what started if one fails."""
    config = write_config(directory, accounts)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    common = ["--config", str(config), "--log-dir", str(directory / "logs")]
    processes: list[Process] = []
    try:
        engine = start(
            "exchange",
            [
                "--command-port",
                "0",
                "--event-port",
                "0",
                "--data-dir",
                str(directory / "data"),
                *(["--fsync", fsync] if fsync != "engine-default" else []),
                *common,
            ],
            env,
        )
        processes.append(engine)
        command, events = engine.ports["command_port"], engine.ports["event_port"]
        engine_url = f"ws://127.0.0.1:{command}"
        processes.append(
            start(
                "gateway", ["--port", "0", "--rest-port", "0", "--engine", engine_url, *common], env
            )
        )
        upstream = f"ws://127.0.0.1:{events}"
        processes.append(start("marketdata", ["--port", "0", "--upstream", upstream, *common], env))
    except BaseException:
        stop_system(processes)
        raise
    return processes


def stop_system(processes: list[Process]) -> None:
    """Stop ``processes`` in reverse start order."""
    for process in reversed(processes):
        stop(process)


async def connect_client(port: int, n: int) -> Any:
    return await websockets.connect(
        f"ws://127.0.0.1:{port}",
        additional_headers={"Authorization": f"Bearer bench{n}-key"},
        compression=None,
        max_size=2**24,
        max_queue=None,
    )


def iter_messages(frame: str | bytes) -> list[dict[str, Any]]:
    value = _decode(frame)
    return value if isinstance(value, list) else [value]


class Ack(msgspec.Struct):
    """The fields of a gateway message the load generator reads (the rest is skipped
    unparsed, so the client takes as little of the shared CPU as possible)."""

    exec_type: str | None = None
    req_id: int | str | None = None


_decode_acks = msgspec.json.Decoder(list[Ack] | Ack).decode


def iter_acks(frame: str | bytes) -> list[Ack]:
    value = _decode_acks(frame)
    return value if isinstance(value, list) else [value]


async def fixed_rate(port: int, clients: int, rate: float, seconds: float) -> HdrHistogram:
    """Offer ``rate`` new orders/s in total, evenly spaced across the clients; each order is
    cancelled right after its ack."""
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    sockets = [await connect_client(port, n) for n in range(clients)]
    per_client = rate / clients
    start = time.perf_counter()
    stop_at = start + seconds

    async def run(ws: Any, n: int) -> None:
        sent: dict[int, int] = {}
        rng = random.Random(n)
        next_id = 0

        async def reader() -> None:
            async for frame in ws:
                for msg in iter_messages(frame):
                    req = msg.get("req_id")
                    if msg.get("exec_type") == "new" and req in sent:
                        histogram.record_value(time.perf_counter_ns() - sent.pop(req))
                        await ws.send(
                            _encode({"type": "cancel_order", "order_id": msg["order_id"]})
                        )

        task = asyncio.create_task(reader())
        interval = 1.0 / per_client
        # Clients are phase-shifted so that together they offer one evenly spaced stream
        # (in step, they would send bursts of `clients` orders at once and measure the burst).
        due = start + interval * n / clients
        while due < stop_at:
            now = time.perf_counter()
            if now < due:
                await asyncio.sleep(due - now)
            next_id += 1
            side = "buy" if next_id % 2 else "sell"
            price = (
                95.0 - rng.randint(0, 300) / 100
                if side == "buy"
                else 105.0 + rng.randint(0, 300) / 100
            )
            sent[next_id] = time.perf_counter_ns()
            await ws.send(
                _encode(
                    {
                        "type": "new_order",
                        "symbol": SYMBOL,
                        "side": side,
                        "qty": 1,
                        "price": round(price, 2),
                        "req_id": next_id,
                    }
                )
            )
            due += interval
        await asyncio.sleep(0.5)
        task.cancel()

    await asyncio.gather(*(run(ws, n) for n, ws in enumerate(sockets)))
    for ws in sockets:
        await ws.close()
    return histogram


async def saturate(
    port: int, clients: int, seconds: float, batch: int, window: int
) -> tuple[int, float, HdrHistogram]:
    """Send batches of new orders (with cancels) as fast as they are acknowledged."""
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    sockets = [await connect_client(port, n) for n in range(clients)]
    acked = 0
    started = time.perf_counter()
    stop_at = started + seconds

    async def run(ws: Any, n: int) -> None:
        nonlocal acked
        rng = random.Random(n)
        in_flight = asyncio.Semaphore(window)
        stamps: dict[int, tuple[int, int]] = {}
        next_batch = 0
        done = asyncio.Event()

        async def reader() -> None:
            nonlocal acked
            async for frame in ws:
                for msg in iter_acks(frame):
                    req = msg.req_id
                    if msg.exec_type == "new" and type(req) is int:
                        acked += 1
                        key = req // 1_000_000
                        entry = stamps.get(key)
                        if entry is not None:
                            remaining = entry[1] - 1
                            if remaining == 0:
                                histogram.record_value(time.perf_counter_ns() - entry[0])
                                del stamps[key]
                                in_flight.release()
                            else:
                                stamps[key] = (entry[0], remaining)
                if done.is_set() and not stamps:
                    return

        task = asyncio.create_task(reader())
        while time.perf_counter() < stop_at:
            await in_flight.acquire()
            next_batch += 1
            members = []
            for k in range(batch):
                side = "buy" if k % 2 else "sell"
                offset = rng.randint(0, 300) / 100
                price = 95.0 - offset if side == "buy" else 105.0 + offset
                members.append(
                    {
                        "type": "new_order",
                        "symbol": SYMBOL,
                        "side": side,
                        "qty": 1,
                        "price": round(price, 2),
                        "tif": "gtc",
                        "req_id": next_batch * 1_000_000 + k,
                    }
                )
            members.append({"type": "cancel_all", "symbol": SYMBOL})
            stamps[next_batch] = (time.perf_counter_ns(), batch)
            await ws.send(_encode(members))
        done.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()

    await asyncio.gather(*(run(ws, n) for n, ws in enumerate(sockets)))
    elapsed = time.perf_counter() - started
    for ws in sockets:
        await ws.close()
    return acked, elapsed, histogram


async def fanout(
    relay_port: int, gateway_port: int, subscribers: int, rate: float, seconds: float
) -> tuple[float, HdrHistogram, int]:
    """Subscribers on book + trades while a fixed order flow with trades runs."""
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    counts = [0] * subscribers
    subs = []
    for _ in range(subscribers):
        ws = await websockets.connect(
            f"ws://127.0.0.1:{relay_port}", compression=None, max_size=2**24, max_queue=None
        )
        await ws.send(
            _encode(
                {
                    "type": "subscribe",
                    "channels": [f"book.{SYMBOL}", f"trades.{SYMBOL}", f"bbo.{SYMBOL}"],
                }
            )
        )
        subs.append(ws)
    measuring = False

    async def listen(i: int, ws: Any) -> None:
        # Only every 10th subscriber decodes (to measure delay); the others count messages by
        # their type tags, so the benchmark client itself stays cheap.
        sampled = i % 10 == 0
        async for frame in ws:
            if not measuring:
                continue
            if not sampled:
                counts[i] += frame.count('"type":"book_update"') + frame.count('"type":"trade"')
                counts[i] += frame.count('"type":"bbo"')
                continue
            now = time.time_ns()
            for msg in iter_messages(frame):
                ts = msg.get("ts")
                if ts and msg.get("type") in ("book_update", "trade", "bbo"):
                    counts[i] += 1
                    histogram.record_value(max(1, now - ts))

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(subs)]
    traders = [await connect_client(gateway_port, n) for n in range(2)]

    async def drain(ws: Any) -> None:
        async for _ in ws:
            pass

    drains = [asyncio.create_task(drain(ws)) for ws in traders]
    await asyncio.sleep(0.5)
    measuring = True
    started = time.perf_counter()
    interval = 2.0 / rate
    due = started
    n = 0
    while time.perf_counter() - started < seconds:
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
        n += 1
        price = round(100.0 + (n % 7 - 3) * 0.01, 2)
        await traders[0].send(
            _encode(
                {"type": "new_order", "symbol": SYMBOL, "side": "sell", "qty": 1, "price": price}
            )
        )
        await traders[1].send(
            _encode(
                {"type": "new_order", "symbol": SYMBOL, "side": "buy", "qty": 1, "price": price}
            )
        )
        due += interval
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)
    measuring = False
    for task in listeners + drains:
        task.cancel()
    for ws in subs + traders:
        await ws.close()
    per_subscriber = sum(counts) / subscribers / elapsed
    return per_subscriber, histogram, min(counts)


async def watch(relay_port: int, count: int) -> None:
    """``count`` relay subscribers on every symbol's book, trades and BBO that read and drop
    what they get (the load of a few dashboards or monitors), until killed."""

    async def drain(ws: Any) -> None:
        async for _ in ws:
            pass

    sockets = []
    for _ in range(count):
        ws = await websockets.connect(
            f"ws://127.0.0.1:{relay_port}", compression=None, max_size=2**24, max_queue=None
        )
        await ws.send(_encode({"type": "subscribe", "channels": ["book.*", "trades.*", "bbo.*"]}))
        sockets.append(ws)
    print("watching", flush=True)
    await asyncio.gather(*(drain(ws) for ws in sockets))


def start_watchers(relay_port: int, count: int) -> subprocess.Popen[bytes] | None:
    """The watchers in a process of their own (so that reading the feed does not slow the
    order clients' event loop); returns once they are subscribed."""
    if count <= 0:
        return None
    process = subprocess.Popen(
        [sys.executable, __file__, "--watch-relay", str(relay_port), "--watchers", str(count)],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"watching":
        raise RuntimeError("watchers failed to subscribe")
    return process


class RestClient:
    """One keep-alive HTTP/1.1 connection to the gateway's REST port (one request at a time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str):
        self.reader = reader
        self.writer = writer
        self.head = (
            "POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        ).encode()

    @classmethod
    async def open(cls, port: int, n: int) -> RestClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"bench{n}-key")

    async def post_order(self, body: bytes) -> int:
        """POST one order; returns the HTTP status once the whole reply is read."""
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _rest_order(n: int) -> bytes:
    """Alternate sides at one price, so that the orders trade and the book stays small."""
    side = "buy" if n % 2 else "sell"
    return _json_encode({"symbol": SYMBOL, "side": side, "qty": 1, "price": 100.0})


async def rest_fixed(port: int, clients: int, rate: float, seconds: float) -> HdrHistogram:
    """REST orders at a fixed total rate over keep-alive connections; request latency."""
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    connections = [await RestClient.open(port, n) for n in range(clients)]
    interval = clients / rate

    async def run(client: RestClient, n: int) -> None:
        started = time.perf_counter()
        due = started + n * interval / clients
        count = 0
        while due - started < seconds:
            now = time.perf_counter()
            if now < due:
                await asyncio.sleep(due - now)
            sent = time.perf_counter_ns()
            if await client.post_order(_rest_order(n + count)) == 200:
                histogram.record_value(max(1, time.perf_counter_ns() - sent))
            count += 1
            due += interval

    await asyncio.gather(*(run(c, n) for n, c in enumerate(connections)))
    for client in connections:
        client.close()
    return histogram


async def rest_saturate(port: int, clients: int, seconds: float) -> tuple[int, float]:
    """REST orders back to back on each keep-alive connection; (acknowledged, seconds)."""
    connections = [await RestClient.open(port, n) for n in range(clients)]
    acked = 0
    started = time.perf_counter()

    async def run(client: RestClient, n: int) -> None:
        nonlocal acked
        count = 0
        while time.perf_counter() - started < seconds:
            if await client.post_order(_rest_order(n + count)) == 200:
                acked += 1
            count += 1

    await asyncio.gather(*(run(c, n) for n, c in enumerate(connections)))
    elapsed = time.perf_counter() - started
    for client in connections:
        client.close()
    return acked, elapsed


def quantiles(histogram: HdrHistogram) -> str:
    def ms(p: float) -> str:
        return f"{histogram.get_value_at_percentile(p) / 1e6:.2f}"

    peak = histogram.get_max_value() / 1e6
    return f"p50 {ms(50)} ms, p99 {ms(99)} ms, p99.9 {ms(99.9)} ms, max {peak:.2f} ms"


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        processes = start_system(Path(tmp), max(args.clients, 2), args.fsync)
        _, gateway, relay = processes
        try:
            print(
                f"python {sys.version.split()[0]}, clients={args.clients}, fsync={args.fsync}, "
                f"watchers={args.watchers}"
            )
            if args.rest:
                rest_port = gateway.ports["rest_port"]
                hist = await rest_fixed(rest_port, args.clients, args.rest_rate, args.seconds)
                print(
                    f"rest     {args.rest_rate:,.0f} orders/s offered: "
                    f"{hist.get_total_count():,} acked (200), request latency {quantiles(hist)}"
                )
                acked, elapsed = await rest_saturate(rest_port, args.clients, args.seconds)
                print(
                    f"rest     back to back on {args.clients} keep-alive connections: "
                    f"{acked / elapsed:,.0f} acked orders/s ({acked:,} in {elapsed:.1f}s)"
                )
                return
            watchers = start_watchers(relay.ports["port"], args.watchers)
            hist = await fixed_rate(gateway.ports["port"], args.clients, args.rate, args.seconds)
            if watchers is not None:
                watchers.kill()
                watchers.wait()
            print(
                f"fixed    {args.rate:,.0f} orders/s offered: {hist.get_total_count():,} acked, "
                f"ack latency {quantiles(hist)}"
            )
            acked, elapsed, hist = await saturate(
                gateway.ports["port"], args.clients, args.seconds, args.batch, args.window
            )
            print(
                f"saturate batches of {args.batch}: {acked / elapsed:,.0f} acked orders/s "
                f"({acked:,} in {elapsed:.1f}s), batch ack {quantiles(hist)}"
            )
            if args.subscribers <= 0:
                return  # --subscribers 0: order entry only
            rate, hist, slowest = await fanout(
                relay.ports["port"],
                gateway.ports["port"],
                args.subscribers,
                args.fanout_rate,
                args.seconds,
            )
            print(
                f"fanout   {args.subscribers} subscribers: {rate:,.0f} events/s each "
                f"(slowest got {slowest:,}), engine->subscriber delay {quantiles(hist)}"
            )
        finally:
            stop_system(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument(
        "--subscribers", type=int, default=100, help="relay subscribers (0: skip fan-out)"
    )
    parser.add_argument("--fanout-rate", type=float, default=2500.0, help="orders/s for fanout")
    parser.add_argument(
        "--watchers",
        type=int,
        default=0,
        help="relay subscribers (book, trades, BBO of every symbol) attached during the fixed run",
    )
    parser.add_argument(
        "--fsync", default="engine-default", choices=["engine-default", "batch", "none", "always"]
    )
    parser.add_argument(
        "--rest", action="store_true", help="measure REST order entry (the gateway's rest port)"
    )
    parser.add_argument("--rest-rate", type=float, default=1000.0, help="orders/s for rest")
    parser.add_argument("--watch-relay", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = watch(args.watch_relay, args.watchers) if args.watch_relay else main_async(args)
    try:
        import uvloop

        uvloop.run(run)
    except ImportError:
        asyncio.run(run)


if __name__ == "__main__":
    main()
