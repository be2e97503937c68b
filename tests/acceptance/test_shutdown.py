"""A normal stop of the whole system (issue 17): every process is signalled at the same moment,
as honcho does on Ctrl-C (the terminal's SIGINT to all, then honcho's SIGTERM to all), and
the next start finds nothing that a ``cancel_on_disconnect`` session left behind.

Real processes from the Procfile (engine, gateway, relay, exporter, two maker bots) on port
0, plus two clients: alice with ``cancel_on_disconnect``, bob without. Every process exits 0
within 5 s; alice receives her ``canceled`` reports before the gateway closes her session
(1001); after a restart on the same data directory, ``get_orders`` of the bots' accounts and
alice's is empty and the engine's book holds bob's order only; no bot printed a warning.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.harness import (
    engine_argv,
    engine_book,
    exporter_argv,
    gateway_argv,
    live_orders,
    wait_healthy,
)
from tests.integration.clients import gateway_client, read_until_closed
from tests.integration.live_system import LiveSystem, live_system, procfile_command
from tests.support import seconds

BOTS = ("maker1", "mm1")
SYMBOL = "AAPL"


def order(side: str, price: float, **fields: Any) -> dict[str, Any]:
    return {"type": "new_order", "symbol": SYMBOL, "side": side, "qty": 1, "price": price, **fields}


def loud_lines(system: LiveSystem, name: str) -> list[str]:
    """The warning and error lines (and tracebacks) ``name`` printed on stderr."""
    return [
        line
        for line in system.stderr(name).splitlines()
        if line.startswith(("warning", "error", "critical", "Traceback"))
    ]


async def stop_everything(system: LiveSystem, signals: list[signal.Signals]) -> dict[str, int]:
    """Send each of ``signals`` to every running process at once (no await in between), as
    honcho does; every process must exit within 5 s. Returns the exit codes."""
    running = {name: child for name, child in system.processes.items() if child.returncode is None}
    for sig in signals:
        for child in running.values():
            child.send_signal(sig)
    codes = await asyncio.wait_for(
        asyncio.gather(*(child.wait() for child in running.values())), seconds(5)
    )
    return dict(zip(running, codes, strict=True))


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
async def test_a_whole_system_stop_cancels_cancel_on_disconnect_orders(
    tmp_path: Path, how: str
) -> None:
    signals = [signal.SIGTERM] if how == "sigterm" else [signal.SIGINT, signal.SIGTERM]
    async with live_system(tmp_path) as system:
        await system.start("exporter", exporter_argv(system))
        await system.wait_for_log(
            "exporter", lambda events: any(e["event"] == "exporter_started" for e in events), 20
        )
        for bot in BOTS:  # each bot rests orders (seen by another session of its account)
            async with gateway_client(system.gateway_port, f"{bot}-key") as watcher:
                await system.start(bot, procfile_command(bot) + system.urls)
                await watcher.expect("execution_report", exec_type="new", timeout=30)
        async with (
            gateway_client(
                system.gateway_port, "alice-key", path="/?cancel_on_disconnect=true"
            ) as alice,
            gateway_client(system.gateway_port, "bob-key") as bob,
        ):
            await alice.send(order("buy", 180.0, req_id=1), order("buy", 181.0, req_id=2))
            await bob.send(order("buy", 175.0, req_id=3))
            for client, req_id in ((alice, 1), (alice, 2), (bob, 3)):
                await client.expect("execution_report", exec_type="new", req_id=req_id)
            alice_reading = asyncio.create_task(read_until_closed(alice))
            bob_reading = asyncio.create_task(read_until_closed(bob))

            codes = await stop_everything(system, signals)
            assert codes == dict.fromkeys(codes, 0), {
                name: system.stderr(name) for name, code in codes.items() if code
            }
            alice_saw, alice_close = await asyncio.wait_for(alice_reading, seconds(5))
            bob_saw, bob_close = await asyncio.wait_for(bob_reading, seconds(5))

        # alice heard of her orders' end before the gateway closed her session (1001); bob's
        # session, without cancel_on_disconnect, keeps its order
        canceled = [m for m in alice_saw if m.get("exec_type") == "canceled"]
        assert sorted(m["price"] for m in canceled) == [180.0, 181.0], alice_saw
        assert alice_close == bob_close == 1001
        assert not [m for m in bob_saw if m.get("exec_type") == "canceled"], bob_saw
        for bot in BOTS:
            assert not loud_lines(system, bot), system.stderr(bot)
            stopped = [e["event"] for e in system.log_events(f"bot-{bot}")]
            assert "bot_stopped" in stopped, stopped
        assert not loud_lines(system, "gateway"), system.stderr("gateway")
        assert not loud_lines(system, "engine"), system.stderr("engine")

        # The next start on the same data directory: nothing of theirs is live.
        await system.start("engine", engine_argv(system), wait_listening=True)
        await system.start("gateway", gateway_argv(system), wait_listening=True)
        await wait_healthy(system.gateway_port, timeout=20)
        for account in (*BOTS, "alice"):
            assert await live_orders(system, account) == {}, account
        assert [o["price"] for o in (await live_orders(system, "bob")).values()] == [175.0]
        _, bids, asks = await engine_book(system, SYMBOL)
        assert (bids, asks) == ([[175.0, 1]], []), (bids, asks)
