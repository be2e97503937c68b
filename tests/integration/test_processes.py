"""``python -m exchange`` and ``python -m gateway`` as real subprocesses on port 0: the
``listening`` lines, a trade through the gateway, the event port, ``/healthz``, and a clean
exit 0 on SIGTERM within 5 s. Every process (with the relay, the exporter and a bot) writes
its log where ``--log-dir`` or ``EXCHANGE_LOG_DIR`` says, and nothing into its working
directory."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.integration.clients import event_client, gateway_client, http_get
from tests.support import REPO_ROOT, seconds


@asynccontextmanager
async def process(
    *args: str, stderr: Path, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, int]]]:
    """Start ``python -m ARGS`` in ``cwd`` (stderr to the file ``stderr``); yield it and the
    ports of its ``listening`` line. Kills it if the test did not stop it."""
    with stderr.open("wb") as sink:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *args,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        ports = await asyncio.wait_for(listening(child, stderr), seconds(15))
        yield child, ports
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def listening(child: asyncio.subprocess.Process, stderr: Path) -> dict[str, int]:
    assert child.stdout is not None
    while True:
        line = (await child.stdout.readline()).decode()
        if not line:
            raise AssertionError(f"exited before listening: {stderr.read_text()}")
        if "listening" in line:
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            return {name: int(port) for name, port in fields.items()}


async def terminate(child: asyncio.subprocess.Process) -> int:
    child.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(child.wait(), seconds(5))


async def test_engine_and_gateway_processes_trade_and_stop_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    logs = tmp_path / "logs"
    async with process(
        "exchange",
        "--command-port",
        "0",
        "--event-port",
        "0",
        "--data-dir",
        str(data_dir),
        "--log-dir",
        str(logs),
        stderr=tmp_path / "engine.err",
    ) as (engine, engine_ports):
        assert set(engine_ports) == {"command_port", "event_port"}
        assert data_dir.is_dir()
        # the engine URL comes from the environment, the port from the flag
        async with process(
            "gateway",
            "--port",
            "0",
            "--log-dir",
            str(logs),
            stderr=tmp_path / "gateway.err",
            env={
                "EXCHANGE_GATEWAY_ENGINE": f"ws://127.0.0.1:{engine_ports['command_port']}",
                "EXCHANGE_REST_PORT": "0",  # the REST port from the environment
            },
        ) as (gateway, gateway_ports):
            assert set(gateway_ports) == {"port", "rest_port"}
            rest_status, _ = await http_get(gateway_ports["rest_port"], "/healthz")
            assert rest_status == 200
            port = gateway_ports["port"]
            async with (
                event_client(engine_ports["event_port"]) as events,
                gateway_client(port, "alice-key", open_timeout=seconds(10)) as alice,
                gateway_client(port, "bob-key", login=True) as bob,
            ):
                snapshot = await events.next()
                assert snapshot["type"] == "snapshot"
                await bob.send(
                    {
                        "type": "new_order",
                        "symbol": "MSFT",
                        "side": "sell",
                        "qty": 3,
                        "price": 420.5,
                    }
                )
                assert (await bob.next())["exec_type"] == "new"
                await alice.send(
                    {
                        "type": "new_order",
                        "symbol": "MSFT",
                        "side": "buy",
                        "qty": 2,
                        "price": 421.0,
                        "req_id": 1,
                    }
                )
                fill = await alice.expect("execution_report", exec_type="trade")
                assert fill["last_px"] == 420.5 and fill["last_qty"] == 2
                maker = await bob.expect("execution_report", exec_type="trade")
                assert maker["leaves_qty"] == 1
                trade = await events.expect("fill")
                assert (trade["buy_account"], trade["sell_account"]) == ("alice", "bob")
                for health_port in (port, *engine_ports.values()):
                    assert (await http_get(health_port, "/healthz"))[0] == 200
                # SIGTERM with clients connected: they see 1001 (going away), exit code 0
                assert await terminate(gateway) == 0
                assert await alice.closed() == 1001
                assert await terminate(engine) == 0
                assert await events.closed() == 1001
    assert (logs / "engine.log").exists() and (logs / "gateway.log").exists()


async def test_every_process_logs_where_it_is_told_and_not_in_its_working_directory(
    tmp_path: Path,
) -> None:
    """Started from an empty directory with data and CSVs elsewhere, engine, gateway and a bot
    log into ``--log-dir``, the relay into ``EXCHANGE_LOG_DIR`` and the exporter into
    ``EXCHANGE_EXPORTER_LOG_DIR``; the working directory stays empty (no ``./logs``)."""
    work, logs, env_logs = tmp_path / "work", tmp_path / "logs", tmp_path / "env-logs"
    work.mkdir()
    flag = ["--log-dir", str(logs)]
    async with process(
        "exchange",
        *("--command-port", "0", "--event-port", "0", "--data-dir", str(tmp_path / "data")),
        *flag,
        stderr=tmp_path / "engine.err",
        cwd=work,
    ) as (engine, engine_ports):
        upstream = f"ws://127.0.0.1:{engine_ports['event_port']}"
        async with (
            process(
                "gateway",
                *("--port", "0", "--rest-port", "0"),
                *("--engine", f"ws://127.0.0.1:{engine_ports['command_port']}"),
                *flag,
                stderr=tmp_path / "gateway.err",
                cwd=work,
            ) as (gateway, gateway_ports),
            process(
                "marketdata",
                *("--port", "0", "--upstream", upstream),
                stderr=tmp_path / "marketdata.err",
                env={"EXCHANGE_LOG_DIR": str(env_logs)},
                cwd=work,
            ) as (relay, relay_ports),
            process(
                "exporter",
                *("--port", "0", "--upstream", upstream, "--out", str(tmp_path / "out")),
                stderr=tmp_path / "exporter.err",
                env={"EXCHANGE_EXPORTER_LOG_DIR": str(env_logs)},
                cwd=work,
            ) as (exporter, _),
        ):
            with (tmp_path / "bot.err").open("wb") as sink:
                bot = await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "bots", "--strategy", "maker", "--symbol", "AAPL"),
                    *("--account", "maker1", "--api-key", "maker1-key", *flag),
                    *("--gateway", f"ws://127.0.0.1:{gateway_ports['port']}"),
                    *("--marketdata", f"ws://127.0.0.1:{relay_ports['port']}"),
                    cwd=work,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=sink,
                )
            try:
                async with gateway_client(gateway_ports["port"], "maker1-key") as maker:
                    await maker.expect("execution_report", timeout=20, exec_type="new")
            finally:
                if bot.returncode is None:
                    assert await terminate(bot) == 0, (tmp_path / "bot.err").read_text()
            for child in (exporter, relay, gateway, engine):
                assert await terminate(child) == 0
    assert sorted(path.name for path in logs.iterdir()) == [
        "bot-maker1.log",
        "engine.log",
        "gateway.log",
    ]
    assert sorted(path.name for path in env_logs.iterdir()) == ["exporter.log", "marketdata.log"]
    assert list(work.iterdir()) == []
