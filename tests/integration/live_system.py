"""A live system for end-to-end tests: the Procfile's own commands as real processes, every
port 0, data and logs in a temporary directory.

``live_system(tmp)`` starts engine, gateway and relay (their Procfile lines plus port flags,
and ``--config FILE`` when given one) and yields a ``LiveSystem``; ``LiveSystem.start(argv)``
runs more processes (bots) pointed at it, and ``procfile_command(name)`` reads any Procfile
line. Everything still running at the end is killed. Waits are bounded by ``tests.support.seconds``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import REPO_ROOT, seconds


def procfile_command(name: str, procfile: Path = REPO_ROOT / "Procfile") -> list[str]:
    """The argv of Procfile line ``name`` (without its leading ``exec``) with ``python``
    replaced by this interpreter."""
    for line in procfile.read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and not key.lstrip().startswith("#") and key.strip() == name:
            argv = shlex.split(command)
            if argv[0] == "exec":
                argv = argv[1:]
            return [sys.executable if argv[0] in ("python", "python3") else argv[0], *argv[1:]]
    raise KeyError(f"no Procfile line {name!r}")


@dataclass
class LiveSystem:
    tmp: Path
    gateway_port: int = 0
    marketdata_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    """Every port of the system: engine_command_port, engine_event_port, gateway_port, ..."""
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    config: Path | None = None
    """The system TOML every process was started with (None: the shipped default)."""

    @property
    def config_args(self) -> list[str]:
        """``--config FILE`` for a process of this system, or nothing for the default."""
        return [] if self.config is None else ["--config", str(self.config)]

    @property
    def urls(self) -> list[str]:
        """Flags that point a bot at this system."""
        return [
            "--gateway",
            f"ws://127.0.0.1:{self.gateway_port}",
            "--marketdata",
            f"ws://127.0.0.1:{self.marketdata_port}",
            "--log-dir",
            str(self.tmp / "logs"),
        ]

    async def start(
        self, name: str, argv: list[str], wait_listening: bool = False, cwd: Path = REPO_ROOT
    ) -> dict[str, int]:
        """Start ``argv`` in ``cwd`` (stderr to ``tmp/NAME.err``); with ``wait_listening``,
        wait for its ``listening`` line and return the ports it names."""
        sink = (self.tmp / f"{name}.err").open("wb")
        # stdout is read only up to the listening line; otherwise it goes to a file, so that
        # a chatty process never blocks on a full pipe
        out = asyncio.subprocess.PIPE if wait_listening else (self.tmp / f"{name}.out").open("wb")
        child = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdout=out,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        sink.close()
        if not isinstance(out, int):
            out.close()
        self.processes[name] = child
        if not wait_listening:
            return {}
        return await asyncio.wait_for(self._listening(name, child), seconds(20))

    async def _listening(self, name: str, child: asyncio.subprocess.Process) -> dict[str, int]:
        assert child.stdout is not None
        while True:
            line = (await child.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"{name} exited: {self.stderr(name)}")
            if "listening" in line:
                fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                return {key: int(value) for key, value in fields.items()}

    def log_events(self, process: str) -> list[dict[str, Any]]:
        """The JSON log lines ``process`` wrote so far (``tmp/logs/PROCESS.log``)."""
        path = self.tmp / "logs" / f"{process}.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    async def wait_for_log(
        self, process: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> None:
        """Poll ``process``'s log until ``predicate`` holds (a condition with a deadline)."""
        deadline = asyncio.get_running_loop().time() + seconds(timeout)
        while not predicate(self.log_events(process)):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{process} log never matched; stderr: {self.stderr(process)}")
            await asyncio.sleep(0.05)  # polling a file for a condition

    def stderr(self, name: str) -> str:
        return (self.tmp / f"{name}.err").read_text(errors="replace")

    async def terminate(self, name: str) -> int:
        """SIGTERM ``name``; its exit code (it must exit within 5 s)."""
        child = self.processes[name]
        child.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(child.wait(), seconds(5))


@asynccontextmanager
async def live_system(tmp: Path, config: Path | None = None) -> AsyncIterator[LiveSystem]:
    system = LiveSystem(tmp, config=config)
    data, logs = str(tmp / "data"), str(tmp / "logs")
    try:
        engine = await system.start(
            "engine",
            [
                *procfile_command("engine"),
                "--command-port",
                "0",
                "--event-port",
                "0",
                "--data-dir",
                data,
                "--log-dir",
                logs,
                *system.config_args,
            ],
            wait_listening=True,
        )
        gateway = await system.start(
            "gateway",
            [
                *procfile_command("gateway"),
                "--port",
                "0",
                "--rest-port",
                "0",
                "--engine",
                f"ws://127.0.0.1:{engine['command_port']}",
                "--log-dir",
                logs,
                *system.config_args,
            ],
            wait_listening=True,
        )
        relay = await system.start(
            "marketdata",
            [
                *procfile_command("marketdata"),
                "--port",
                "0",
                "--upstream",
                f"ws://127.0.0.1:{engine['event_port']}",
                "--log-dir",
                logs,
                *system.config_args,
            ],
            wait_listening=True,
        )
        system.gateway_port, system.marketdata_port = gateway["port"], relay["port"]
        system.ports = {
            "engine_command_port": engine["command_port"],
            "engine_event_port": engine["event_port"],
            "gateway_port": gateway["port"],
            "gateway_rest_port": gateway["rest_port"],
            "marketdata_port": relay["port"],
        }
        yield system
    finally:
        for child in reversed(list(system.processes.values())):
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
        for child in system.processes.values():
            try:
                await asyncio.wait_for(child.wait(), seconds(5))
            except TimeoutError:
                child.kill()
                await child.wait()
