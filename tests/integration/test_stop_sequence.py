"""How the engine, the gateway and a bot stop (issue 17), in process over real sockets.

- A stopping gateway refuses new connections, is cancel-only (new orders and amends are
  answered ``engine_unavailable`` by the gateway itself), sends every cancel-on-disconnect
  account's ``cancel_all`` first and closes the sessions (1001) only once the engine answered,
  so they receive their ``canceled`` reports.
- A stopping engine refuses new connections but serves the connected gateways until they
  leave (what they send meanwhile is journaled), bounded by its grace; with no gateway it
  stops at once.
- Engine and gateway stopped together (either first) lose no cancel: after a restart on the
  same data directory nothing of a cancel-on-disconnect session is live.
- A bot whose gateway closes while it waits for its stop cancels logs that at info (the
  gateway cancels on disconnect); a gateway that stays up and does not answer is a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import bots.runner
from bots.cli import prepare
from bots.driver import BotDriver
from bots.runner import BotRunner
from exchange.engine import EngineApp
from exchange.protocol.config import load_config
from gateway.server import GatewayApp
from tests.integration.clients import (
    command_client,
    engine_url,
    gateway_client,
    read_until_closed,
    running_engine,
)
from tests.support import seconds

COD = "/?cancel_on_disconnect=true"


def order(side: str = "buy", price: float = 180.0, **fields: Any) -> dict[str, Any]:
    return {"type": "new_order", "symbol": "AAPL", "side": side, "qty": 1, "price": price, **fields}


async def started_gateway(url: str) -> GatewayApp:
    gateway = GatewayApp(load_config(None), port=0, engine_url=url, startup_wait=0.0)
    await gateway.start()
    await asyncio.wait_for(gateway.link.wait_up(), seconds(5))
    return gateway


class HoldingProxy:
    """Stands between a gateway and the engine and forwards every frame both ways; while
    ``hold`` is set it holds back the gateway's frames that carry a ``cancel_all`` (setting
    ``held``) until ``release`` is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hold = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, ws: ServerConnection) -> None:
        async with connect(self.upstream, compression=None, proxy=None, max_size=None) as engine:

            async def downstream() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for frame in engine:
                        await ws.send(frame)

            back = asyncio.create_task(downstream())
            try:
                async for frame in ws:
                    if self.hold and '"cancel_all"' in str(frame):
                        self.held.set()
                        await self.release.wait()
                    await engine.send(frame)
            except ConnectionClosed:
                pass
            finally:
                back.cancel()


# ---------------------------------------------------------------------- gateway


async def test_a_stopping_gateway_is_cancel_only_until_the_engine_answers() -> None:
    async with running_engine() as engine:
        proxy = HoldingProxy(engine_url(engine))
        async with serve(proxy.handle, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            gateway = await started_gateway(f"ws://127.0.0.1:{port}")
            try:
                async with gateway_client(gateway.port, "alice-key", path=COD) as alice:
                    await alice.send(order(price=180.0, req_id=1))
                    placed = await alice.expect("execution_report", exec_type="new")
                    proxy.hold = True
                    stopping = asyncio.create_task(gateway.stop())
                    await asyncio.wait_for(proxy.held.wait(), seconds(5))

                    # the port takes no new connection; the session is cancel-only
                    with pytest.raises(OSError):
                        async with gateway_client(gateway.port):
                            pass
                    amend = {"type": "amend_order", "order_id": placed["order_id"], "qty": 2}
                    await alice.send(order(price=181.0, req_id=2), {**amend, "req_id": 3})
                    refused, amend_refused = await alice.next(), await alice.next()
                    assert refused["exec_type"] == "rejected" and refused["req_id"] == 2
                    assert refused["reject_reason"] == "engine_unavailable"
                    assert refused["seq"] is None and "shutting down" in refused["text"]
                    assert amend_refused["type"] == "cancel_reject"
                    assert amend_refused["reject_reason"] == "engine_unavailable"
                    assert not stopping.done()  # it waits for the engine's answer

                    proxy.release.set()
                    messages, code = await read_until_closed(alice)
                    await asyncio.wait_for(stopping, seconds(5))
            finally:
                proxy.release.set()  # never leave the proxy holding (a failure must not hang)
                await gateway.stop()
        # the report came before the close; nothing refused reached the engine
        [canceled] = [m for m in messages if m.get("exec_type") == "canceled"]
        assert canceled["order_id"] == placed["order_id"] and code == 1001
        assert engine.core.open_orders("alice") == []
        assert gateway.dispatcher.cancels_owed == set()


# ---------------------------------------------------------------------- engine


async def test_a_stopping_engine_serves_connected_gateways_until_they_leave(
    tmp_path: Path,
) -> None:
    # a grace far longer than the test's bound: only the gateway leaving can end the stop
    engine = EngineApp(load_config(None), data_dir=tmp_path, gateway_grace=600.0)
    await engine.start()
    try:
        async with command_client(engine.command_port) as gateway:
            stopping = asyncio.create_task(engine.stop())
            reply = await gateway.submit("alice", order(price=179.0))
            assert [m["exec_type"] for m in reply["messages"] if "exec_type" in m] == ["new"]
            assert not stopping.done() and not engine.ready
            with pytest.raises(OSError):
                async with command_client(engine.command_port):
                    pass
        await asyncio.wait_for(stopping, seconds(5))
    finally:
        await engine.stop()
    async with running_engine(data_dir=tmp_path) as again:  # it was journaled
        assert [o.price for o in again.core.open_orders("alice")] == [179.0]


async def test_an_engine_stopped_alone_stops_promptly(tmp_path: Path) -> None:
    # no gateway: no grace at all
    engine = EngineApp(load_config(None), data_dir=tmp_path / "a", gateway_grace=600.0)
    await engine.start()
    await asyncio.wait_for(engine.stop(), seconds(5))
    # a gateway that stays up: the grace ends the stop; the gateway keeps its sessions
    engine = EngineApp(load_config(None), data_dir=tmp_path / "b", gateway_grace=0.1)
    await engine.start()
    gateway = await started_gateway(engine_url(engine))
    try:
        async with gateway_client(gateway.port, "alice-key") as alice:
            await asyncio.wait_for(engine.stop(), seconds(5))
            await asyncio.wait_for(gateway.link.wait_down(), seconds(5))
            await alice.send(order(req_id="later"))
            refused = await alice.expect("execution_report", req_id="later")
            assert refused["reject_reason"] == "engine_unavailable"
    finally:
        await gateway.stop()


@pytest.mark.parametrize("first", ["engine", "gateway"])
async def test_engine_and_gateway_stopped_together_lose_no_cancel(
    tmp_path: Path, first: str
) -> None:
    engine = EngineApp(load_config(None), data_dir=tmp_path)
    await engine.start()
    gateway = await started_gateway(engine_url(engine))
    try:
        async with (
            gateway_client(gateway.port, "alice-key", path=COD) as alice,
            gateway_client(gateway.port, "bob-key") as bob,
        ):
            await alice.send(order(price=180.0), order(price=181.0))
            await bob.send(order(price=175.0))
            for client in (alice, alice, bob):
                await client.expect("execution_report", exec_type="new")
            reading = asyncio.create_task(read_until_closed(alice))
            stops = [engine.stop(), gateway.stop()]
            if first == "gateway":
                stops.reverse()
            await asyncio.wait_for(asyncio.gather(*stops), seconds(5))
            messages, code = await asyncio.wait_for(reading, seconds(5))
    finally:
        await gateway.stop()
        await engine.stop()
    canceled = [m["price"] for m in messages if m.get("exec_type") == "canceled"]
    assert sorted(canceled) == [180.0, 181.0] and code == 1001
    async with running_engine(data_dir=tmp_path) as again:
        assert again.core.open_orders("alice") == []
        assert [o.price for o in again.core.open_orders("bob")] == [175.0]


# ---------------------------------------------------------------------- bot


class FakeGateway:
    """Logs the bot in, answers its resync, and on its stop ``cancel_all`` does ``on_stop``:
    ``"close"`` (1001, as a stopping gateway that cancels on disconnect), ``"answer"``
    (``cancel_all_done``) or ``"ignore"``."""

    def __init__(self, on_stop: str) -> None:
        self.on_stop = on_stop
        self.synced = asyncio.Event()
        self.login: dict[str, Any] | None = None

    async def handle(self, ws: ServerConnection) -> None:
        limits = {"orders_per_second": 100, "burst": 100, "max_open_orders": 50}
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                data = json.loads(frame)
                for message in data if isinstance(data, list) else [data]:
                    kind = message["type"]
                    if kind == "login":
                        self.login = message
                        await ws.send(
                            json.dumps({"type": "logged_in", "account": "alice", "limits": limits})
                        )
                    elif kind == "get_orders":
                        self.synced.set()
                    elif kind == "cancel_all" and self.on_stop == "close":
                        await ws.close(1001)
                    elif kind == "cancel_all" and self.on_stop == "answer":
                        done = {"type": "cancel_all_done", "account": "alice", "canceled": 0}
                        await ws.send(json.dumps({**done, "req_id": message["req_id"]}))


def maker_bot(gateway: str, marketdata: str) -> BotRunner:
    """A built-in maker bot trading AAPL as alice against the servers at these URLs."""
    strategy, context, settings = prepare(
        {
            "strategy": "maker",
            "account": "alice",
            "api_key": "alice-key",
            "symbol": "AAPL",
            "seed": 1,
            "gateway": gateway,
            "marketdata": marketdata,
            "app_dir": ".",
            "depth": 20,
            "register_cash": 100_000.0,
        }
    )
    return BotRunner(BotDriver(strategy, context, client_order_prefix="t-"), settings)


async def idle(ws: ServerConnection) -> None:
    await ws.wait_closed()


@pytest.mark.parametrize(
    ("on_stop", "event", "level"),
    [
        ("close", "orders_cancelled_on_disconnect", "info"),
        ("answer", "orders_cancelled", "info"),
        ("ignore", "cancel_on_stop_unconfirmed", "warning"),
    ],
)
async def test_a_bot_stopping_with_its_gateway_logs_no_warning(
    monkeypatch: pytest.MonkeyPatch, on_stop: str, event: str, level: str
) -> None:
    monkeypatch.setattr(bots.runner, "STOP_GRACE_S", 0.2 if on_stop == "ignore" else 600.0)
    fake = FakeGateway(on_stop)
    async with (
        serve(fake.handle, "127.0.0.1", 0, compression=None) as gateway_server,
        serve(idle, "127.0.0.1", 0, compression=None) as relay_server,
    ):
        urls = [
            f"ws://127.0.0.1:{s.sockets[0].getsockname()[1]}"
            for s in (gateway_server, relay_server)
        ]
        runner = maker_bot(urls[0], urls[1])
        stop = asyncio.Event()
        with capture_logs() as logs:
            running = asyncio.create_task(runner.run(stop))
            await asyncio.wait_for(fake.synced.wait(), seconds(5))
            stop.set()
            assert await asyncio.wait_for(running, seconds(5)) == 0
    assert fake.login is not None and fake.login["cancel_on_disconnect"] is True
    stopping = [e for e in logs if e["event"] == event]
    assert [e["log_level"] for e in stopping] == [level], logs
    loud = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert loud == (stopping if level == "warning" else []), logs


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _logged(logs: list[dict[str, Any]], count: int, level: str) -> None:
    """Wait (bounded) until ``count`` connection failures were logged at ``level``."""
    deadline = asyncio.get_running_loop().time() + seconds(10)
    while sum(e["event"] == "connection_failed" and e["log_level"] == level for e in logs) < count:
        assert asyncio.get_running_loop().time() < deadline, logs
        await asyncio.sleep(0.05)  # polling the captured log for a condition


async def test_a_bot_started_before_its_servers_waits_quietly_then_warns() -> None:
    """Started with the rest of the system, a bot whose servers do not listen yet logs its
    failed connections at info during the start-up grace; past it, they are warnings."""
    urls = [f"ws://127.0.0.1:{_closed_port()}" for _ in range(2)]
    runner = maker_bot(urls[0], urls[1])
    stop = asyncio.Event()
    with capture_logs() as logs:
        running = asyncio.create_task(runner.run(stop))
        await _logged(logs, 4, "info")  # both servers, at least twice each
        assert not [e for e in logs if e["log_level"] in ("warning", "error")], logs
        runner._started -= bots.runner.STARTUP_GRACE_S  # the grace is over
        await _logged(logs, 1, "warning")
        stop.set()
        assert await asyncio.wait_for(running, seconds(10)) == 0
