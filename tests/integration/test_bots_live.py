"""Bots end to end against a live system started from the Procfile (real processes, port 0):
the tutorial's first bot runs as pasted, the example strategy trades, a bot survives a relay
restart, and SIGTERM cancels a bot's orders and exits 0. The tutorial's bots trade the
``tutorial`` account, which no Procfile bot uses."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.clients import gateway_client
from tests.integration.live_system import LiveSystem, live_system, procfile_command
from tests.tutorial import TUTORIAL, VENV_PYTHON, shell_commands, tutorial_files

EXAMPLE = [
    "--strategy",
    "examples.mean_reversion:MeanReversion",
    "--account",
    "tutorial",
    "--api-key",
    "tutorial-key",
    "--symbol",
    "AAPL",
    "--seed",
    "11",
    "--param",
    "window=3",
    "--param",
    "threshold_bps=0",
]


async def start_bot(system: LiveSystem, name: str) -> None:
    await system.start(name, procfile_command(name) + system.urls)


async def test_the_tutorials_first_bot_runs_as_pasted(tmp_path: Path) -> None:
    """docs/strategies.md's first command, run where its my_strategies.py was saved: the bot
    joins the best bid with 2 lots on its own account, and stops cleanly."""
    text = TUTORIAL.read_text()
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "my_strategies.py").write_text(tutorial_files(text)["my_strategies.py"])
    command = shell_commands(text)[0]
    assert command[:3] == [VENV_PYTHON, "-m", "bots"], command
    async with live_system(tmp_path) as system:
        await start_bot(system, "maker1")
        async with gateway_client(system.gateway_port, "tutorial-key", login=True) as mine:
            argv = [sys.executable, *command[1:], *system.urls]
            await system.start("tutorial", argv, cwd=clone)
            placed = await mine.expect("execution_report", timeout=30, exec_type="new")
            assert (placed["symbol"], placed["side"], placed["qty"]) == ("AAPL", "buy", 2)
            assert placed["client_order_id"].startswith("tutorial-")
            assert await system.terminate("tutorial") == 0, system.stderr("tutorial")
            await mine.send({"type": "get_orders", "symbol": "AAPL", "req_id": "left"})
            assert (await mine.expect("orders", req_id="left"))["orders"] == []
        assert "strategy_error" not in system.stderr("tutorial")
        assert await system.terminate("maker1") == 0, system.stderr("maker1")
    assert not (clone / "logs").exists()  # the bot was given --log-dir


async def test_example_strategy_trades_and_stops_cleanly(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        await start_bot(system, "maker1")
        await start_bot(system, "taker1")
        async with gateway_client(system.gateway_port, "tutorial-key", login=True) as mine:
            await system.start("example", [sys.executable, "-m", "bots", *EXAMPLE, *system.urls])
            # another session of the account sees every report of the example's orders
            placed = await mine.expect("execution_report", timeout=30, exec_type="new")
            assert placed["symbol"] == "AAPL"
            assert placed["client_order_id"].startswith("tutorial-")
            assert await system.terminate("example") == 0, system.stderr("example")
            await mine.send({"type": "get_orders", "symbol": "AAPL", "req_id": "left"})
            left = await mine.expect("orders", req_id="left")
            assert left["orders"] == []
        assert "strategy_error" not in system.stderr("example")
        for bot in ("maker1", "taker1"):
            assert await system.terminate(bot) == 0, system.stderr(bot)
            assert "strategy_error" not in system.stderr(bot)


def connections(events: list[dict[str, object]], to: str) -> int:
    return sum(1 for e in events if e.get("event") == "connected" and e.get("to") == to)


async def test_a_bot_reconnects_after_the_relay_restarts(tmp_path: Path) -> None:
    async with live_system(tmp_path) as system:
        await start_bot(system, "maker1")
        async with gateway_client(system.gateway_port, "maker1-key", login=True) as maker:
            await maker.expect("execution_report", timeout=30, exec_type="new")
        assert await system.terminate("marketdata") == 0
        await system.start(
            "marketdata2",
            [
                *procfile_command("marketdata"),
                "--port",
                str(system.marketdata_port),
                "--upstream",
                f"ws://127.0.0.1:{system.ports['engine_event_port']}",
                "--log-dir",
                str(tmp_path / "logs"),
            ],
            wait_listening=True,
        )
        await system.wait_for_log(
            "bot-maker1", lambda events: connections(events, "marketdata") >= 2, timeout=20
        )
        assert await system.terminate("maker1") == 0, system.stderr("maker1")


async def test_a_bots_file_runs_one_process_per_bot_and_stops_them(tmp_path: Path) -> None:
    bots_file = tmp_path / "bots.toml"
    bots_file.write_text(
        "[[bot]]\nstrategy = 'maker'\naccount = 'maker1'\napi_key = 'maker1-key'\n"
        "symbol = 'AAPL'\nseed = 1\n\n"
        "[[bot]]\nstrategy = 'taker'\naccount = 'taker1'\napi_key = 'taker1-key'\n"
        "symbol = 'AAPL'\nseed = 2\nparams = { interval_s = 0.2 }\n"
    )
    async with live_system(tmp_path) as system:
        await system.start(
            "supervisor", [sys.executable, "-m", "bots", "--config", str(bots_file), *system.urls]
        )
        for bot in ("bot-maker1", "bot-taker1"):
            await system.wait_for_log(
                bot, lambda events: any(e.get("event") == "logged_in" for e in events), 30
            )
        assert await system.terminate("supervisor") == 0, system.stderr("supervisor")
        for bot in ("bot-maker1", "bot-taker1"):
            assert any(e.get("event") == "bot_stopped" for e in system.log_events(bot)), bot
