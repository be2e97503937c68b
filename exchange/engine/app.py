"""The engine process wired together: core, sequencer, publisher, both ports, timers.

``EngineApp`` can run in-process (tests) or under ``python -m exchange``::

    app = EngineApp(load_config(None), command_port=0, event_port=0)
    await app.start()          # binds both ports; app.command_port / app.event_port are real
    ...
    await app.stop()           # stops timers, serves connected gateways briefly (their
                               # last cancels), closes connections, commits the journal

Everything runs on the caller's event loop; the core is only touched from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import structlog
from websockets.asyncio.server import Server, serve

from exchange.core import Exchange
from exchange.core.config import core_config
from exchange.engine.command_port import CommandPort
from exchange.engine.durability import Durability
from exchange.engine.event_port import EventPort, build_snapshot
from exchange.engine.group_commit import (
    Committer,
    ImmediateCommit,
    PeriodicSync,
    PipelinedCommit,
)
from exchange.engine.history import EventHistory
from exchange.engine.metrics import EngineStats
from exchange.engine.publisher import Publisher
from exchange.engine.scenario import ScenarioPlayer
from exchange.engine.sequencer import Sequencer
from exchange.protocol.config import SystemConfig
from exchange.protocol.messages import AdvanceTime, OperatorCommand, RankAccounts, Revalue
from exchange.protocol.names import SCENARIO
from exchange.protocol.scenario import Scenario
from exchange.service.http import http_handler

log = structlog.get_logger("engine")

COMMAND_MAX_FRAME = 16 * 1024 * 1024
"""Largest frame a gateway may send (a batch of many sessions' envelopes)."""
EVENT_MAX_FRAME = 64 * 1024
"""Largest frame an event-port consumer may send (it only sends a ``StreamRequest``)."""
GATEWAY_BUFFER_LIMIT = 64 * 1024 * 1024
"""Unsent bytes for one gateway before it is disconnected (it reconnects)."""
SUBSCRIBER_BUFFER_LIMIT = 32 * 1024 * 1024
"""Unsent bytes for one event-port consumer before it is disconnected (it resumes with since)."""

DRAIN_TIMEOUT = 1.0
"""Seconds ``stop`` waits for staged replies and events to be written before closing."""
GATEWAY_GRACE = 2.0
"""Seconds ``stop`` goes on serving the gateways still connected, so that what they send while
stopping themselves (their sessions' cancel-on-disconnect cancels) is handled and journaled;
it ends as soon as every gateway link has closed."""


class EngineApp:
    """The engine: owns the core and serves the command and event ports."""

    def __init__(
        self,
        config: SystemConfig,
        *,
        host: str = "127.0.0.1",
        command_port: int = 0,
        event_port: int = 0,
        data_dir: str | Path | None = None,
        core: Exchange | None = None,
        fsync: str | None = None,
        heartbeat_interval: float = 1.0,
        subscriber_buffer_limit: int = SUBSCRIBER_BUFFER_LIMIT,
        gateway_buffer_limit: int = GATEWAY_BUFFER_LIMIT,
        gateway_grace: float = GATEWAY_GRACE,
        scenario: Scenario | None = None,
    ) -> None:
        """``scenario``: operator commands to play on the engine's clock (``--scenario``)."""
        self.config = config
        self.host = host
        self._requested_ports = (command_port, event_port)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.durability: Durability | None = None
        recovered: list[bytes] = []
        first_seq = 0
        if core is not None:
            self.core = core
        elif self.data_dir is not None:
            self.durability, self.core, recovered, first_seq = Durability.open(
                self.data_dir, core_config(config), config.engine.keep_snapshots
            )
        else:
            self.core = Exchange(core_config(config))
        self.stats = EngineStats()
        mode = fsync or config.engine.fsync
        self.sequencer = Sequencer(
            self.core,
            journal=self.durability.writer if self.durability else None,
            sync=mode != "none",
        )
        self.history = EventHistory(
            config.engine.event_history, self.core.last_seq - len(recovered)
        )
        if recovered:
            self.history.extend(first_seq + 1, recovered)
        self.committer = self._committer(mode)
        self.publisher = Publisher(
            self.sequencer,
            self.history,
            self.stats,
            lambda: build_snapshot(self.core, time.time_ns()),
            committer=self.committer,
        )
        self.command = CommandPort(
            self.sequencer, self.publisher, config, self.stats, buffer_limit=gateway_buffer_limit
        )
        self.events = EventPort(
            self.publisher,
            self.history,
            self.stats,
            buffer_limit=subscriber_buffer_limit,
            disk=self.durability,
        )
        self._heartbeat_interval = heartbeat_interval
        self._gateway_grace = gateway_grace
        self._mark_interval = config.engine.mark_interval_ms / 1000
        self._clock_interval = config.engine.clock_interval_ms / 1000
        self._leaderboard_interval = config.engine.leaderboard_interval_ms / 1000
        self.scenario = (
            ScenarioPlayer(scenario, self.operate, self.data_dir) if scenario is not None else None
        )
        self._servers: list[Server] = []
        self._timers: list[asyncio.Task[None]] = []
        self._ready = False
        self.command_port = 0
        self.event_port = 0
        self.registry = self.stats.registry()
        self._register_gauges()

    def _committer(self, mode: str) -> Committer:
        """When staged replies and events may leave: at once without a journal; after an
        fsync covering them (``always``); after their write, with a background fsync every
        ``fsync_interval_ms`` (``batch``); after their write (``none``)."""
        if self.durability is not None and mode == "always":
            return PipelinedCommit(self.sequencer, _journal_failed)
        if self.durability is not None and mode == "batch":
            interval = self.config.engine.fsync_interval_ms / 1000
            return PeriodicSync(self.sequencer, _journal_failed, interval)
        return ImmediateCommit(self.sequencer)

    def _register_gauges(self) -> None:
        """The gauges ``/metrics`` reads at scrape time: last seq, subscribers, connections
        and unsent bytes per port."""
        self.stats.gauges.update(
            {
                "engine_last_seq": lambda: float(self.core.last_seq),
                "engine_event_subscribers": lambda: float(len(self.publisher.subscribers)),
            }
        )
        self.stats.labelled_gauges.update(
            {
                "engine_connections": (
                    "port",
                    lambda: {
                        "command": float(self.command.connections),
                        "event": float(self.events.connections),
                    },
                ),
                "engine_queue_bytes": (
                    "port",
                    lambda: {
                        "command": float(self.command.queued_bytes()),
                        "event": float(self.events.queued_bytes()),
                    },
                ),
            }
        )

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Bind both ports and start the timers. Raises OSError if a port is taken."""
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        health = http_handler(lambda: self._ready, self.registry)
        common: dict[str, Any] = {
            "compression": None,
            "process_request": health,
            "close_timeout": 1,
            "ping_interval": 20,
            "ping_timeout": 20,
        }
        command_server = await serve(
            self.command.handle,
            self.host,
            self._requested_ports[0],
            max_size=COMMAND_MAX_FRAME,
            max_queue=64,
            **common,
        )
        self._servers.append(command_server)
        event_server = await serve(
            self.events.handle,
            self.host,
            self._requested_ports[1],
            max_size=EVENT_MAX_FRAME,
            **common,
        )
        self._servers.append(event_server)
        self.command_port = command_server.sockets[0].getsockname()[1]
        self.event_port = event_server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        self._timers.append(
            loop.create_task(self._every(self._heartbeat_interval, self.events.heartbeat))
        )
        if self._mark_interval > 0:
            self._timers.append(loop.create_task(self._every(self._mark_interval, self.revalue)))
        if self._leaderboard_interval > 0:
            self._timers.append(
                loop.create_task(self._every(self._leaderboard_interval, self.rank_accounts))
            )
        if self._clock_interval > 0:
            self._timers.append(
                loop.create_task(self._every(self._clock_interval, self.advance_time))
            )
        if self.durability is not None:
            self._timers.append(loop.create_task(self._every(1.0, self.maybe_snapshot)))
        if self.scenario is not None:
            self._timers.append(loop.create_task(self.scenario.run()))
        self._ready = True
        log.info(
            "engine_started",
            command_port=self.command_port,
            event_port=self.event_port,
            accounts=len(self.core.accounts()),
            symbols=len(self.core.symbols()),
        )

    def revalue(self) -> None:
        """Mark to market: account updates for every account whose equity moved."""
        events = self.sequencer.submit("", Revalue())
        self.stats.commands["Revalue"] += 1
        self.publisher.publish(events, None)

    def operate(self, command: OperatorCommand) -> None:
        """An operator command of the engine's own (a scenario entry): journaled (under the
        ``names.SCENARIO`` account) and published like one from an operator session."""
        events = self.sequencer.submit(SCENARIO, command)
        self.stats.commands[type(command).__name__] += 1
        self.publisher.publish(events, None)

    def rank_accounts(self) -> None:
        """The round's standings: one journaled ``RankAccounts``, a ``leaderboard`` event."""
        events = self.sequencer.submit("", RankAccounts())
        self.stats.commands["RankAccounts"] += 1
        self.publisher.publish(events, None)

    def advance_time(self) -> None:
        """Expire due GTD orders: one journaled ``AdvanceTime`` when a deadline has passed."""
        deadline = self.core.next_deadline()
        if deadline is None or deadline > self.sequencer.peek():
            return
        events = self.sequencer.submit("", AdvanceTime())
        self.stats.commands["AdvanceTime"] += 1
        self.publisher.publish(events, None)

    def maybe_snapshot(self) -> None:
        """Snapshot when ``snapshot_every_commands`` commands or ``snapshot_interval_s``
        seconds have passed since the last one (checked every second)."""
        durability = self.durability
        if durability is None or not durability.dirty:
            return
        engine = self.config.engine
        pending = durability.writer.next_index - durability.commands_at_snapshot
        age = time.monotonic() - durability.snapshot_time
        if (engine.snapshot_every_commands and pending >= engine.snapshot_every_commands) or (
            engine.snapshot_interval_s and age >= engine.snapshot_interval_s
        ):
            self.snapshot()

    def snapshot(self) -> None:
        """Snapshot the state now if anything changed since the last one (no-op without a
        data directory)."""
        durability = self.durability
        if durability is not None and durability.dirty:
            self.publisher.drain()
            durability.snapshot(self.core)

    async def _every(self, interval: float, action: Any) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                action()
            except Exception:  # a bug: log it, keep the timer alive
                log.exception("timer_failed", action=getattr(action, "__name__", str(action)))

    async def stop(self) -> None:
        """Stop accepting connections and stop the timers; go on serving the connected
        gateways until their links close (at most ``gateway_grace``, default
        ``GATEWAY_GRACE``); then release what is staged, close every connection and commit
        the journal (with a snapshot).

        Never raises; returns within about ``gateway_grace`` + ``DRAIN_TIMEOUT`` + a second
        (the close timeout) plus the I/O; without the grace when no gateway is connected.
        """
        self._ready = False
        for server in self._servers:
            server.server.close()  # no new connections; the open ones are still served
        for timer in self._timers:
            timer.cancel()
        for timer in self._timers:
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self._timers.clear()
        if self.command.connections:
            started = time.monotonic()
            try:
                await asyncio.wait_for(self.command.wait_no_gateways(), self._gateway_grace)
            except TimeoutError:
                log.info("gateways_still_connected", gateways=self.command.connections)
            else:
                log.info("gateways_gone", waited_s=round(time.monotonic() - started, 3))
        self.publisher.drain()
        outboxes = [peer.outbox for peer in self.publisher.gateways]
        outboxes += [subscriber.outbox for subscriber in self.publisher.subscribers]
        if outboxes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(outbox.drain() for outbox in outboxes)), DRAIN_TIMEOUT
                )
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self.publisher.drain()
        self.committer.close()
        if self.durability is not None:
            self.durability.close(self.core)
        log.info("engine_stopped", last_seq=self.core.last_seq)

    async def __aenter__(self) -> EngineApp:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def _journal_failed(error: BaseException) -> None:
    """An fsync of the journal failed: what was written may not be on disk, so nothing more
    may be acknowledged. Exit at once; a restart recovers from what the journal really holds
    and the gateways answer the orders in flight with ``engine_unavailable``."""
    log.critical("journal_sync_failed", error=repr(error))
    os._exit(70)
