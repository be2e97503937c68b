"""The gateway's connection to the engine's command port, kept up with reconnects.

``request(pending)`` assigns an envelope id, queues the envelope (everything queued in one loop
iteration goes out in one frame) and later calls ``pending.on_reply(messages)``. While the link
is down, ``request`` calls ``pending.on_unavailable()`` at once; when the link drops, every
request still waiting gets ``on_unavailable()`` (in the order they were sent), so no client
request is ever left unanswered. Reconnects back off exponentially (``initial_delay`` doubling
up to ``max_delay``, with ±20 % jitter) and reset after a successful connect.

Stopping (``GatewayApp.stop``): ``detach()`` first (the link stays up for what is still to be
sent, but a drop is now expected: no warning, no reconnect), ``wait_idle(timeout)`` for the
answers to what was sent, then ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from exchange.protocol.codec import encode, engine_frame_decoder
from exchange.protocol.internal import EngineReply
from exchange.service.outbox import Outbox
from gateway.dispatch import Pending
from gateway.metrics import GatewayStats

log = structlog.get_logger("gateway.engine_link")

SEND_BUFFER_LIMIT = 256 * 1024 * 1024
"""Unsent bytes to the engine before the link is dropped (the engine is stuck)."""
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Envelope frames to the engine are split at about this size (its limit is 16 MiB)."""


class EngineLink:
    """One reconnecting WebSocket to the engine."""

    def __init__(
        self,
        url: str,
        stats: GatewayStats,
        *,
        on_push: Callable[[list[msgspec.Raw]], None],
        on_up: Callable[[], None],
        initial_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        self.url = url
        self._stats = stats
        self._on_push = on_push
        self._on_up = on_up
        self._initial_delay = initial_delay
        self._max_delay = max_delay
        self._pending: dict[int, tuple[Pending, float]] = {}
        self._next_id = 1
        self._outbox: Outbox | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._up = False
        self._stopping = False
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._idle: asyncio.Future[None] | None = None
        """Set by ``wait_idle`` while it waits: resolved once no request is in flight."""

    @property
    def up(self) -> bool:
        return self._up

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def wait_up(self) -> None:
        """Wait until the link is up (tests, start-up)."""
        await self._connected.wait()

    async def wait_down(self) -> None:
        """Wait until the link is down (tests)."""
        await self._disconnected.wait()

    def start(self) -> None:
        """Start connecting in the background (call inside the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    def detach(self) -> None:
        """The gateway is stopping: keep the link for what is still to be sent and answered,
        but from now on a drop is expected (logged at info) and not followed by a reconnect."""
        self._stopping = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no request is waiting for the engine (every
        one answered, or failed ``on_unavailable`` because the link dropped); returns whether
        none is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending and self._up:  # (requests sent meanwhile are waited for too)
            left = deadline - loop.time()
            if left <= 0:
                break
            idle = self._idle
            if idle is None or idle.done():
                idle = self._idle = loop.create_future()
            await asyncio.wait([idle], timeout=left)
        return not self._pending

    def _check_idle(self) -> None:
        idle = self._idle
        if idle is not None and not self._pending and not idle.done():
            idle.set_result(None)

    async def stop(self, drain_timeout: float = 1.0) -> None:
        """Send what is queued and wait up to ``drain_timeout`` for replies, then close.
        Requests still waiting are answered ``on_unavailable``."""
        self._stopping = True
        if self._up and self._outbox is not None:
            await self.wait_idle(drain_timeout)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_pending()

    # ------------------------------------------------------------------ requests

    def request(self, pending: Pending) -> None:
        """Send ``pending``'s envelope, or answer it unavailable at once if the link is down."""
        outbox = self._outbox
        if not self._up or outbox is None:
            pending.on_unavailable()
            return
        envelope_id = self._next_id
        self._next_id = envelope_id + 1
        self._pending[envelope_id] = (pending, time.perf_counter())
        outbox.put(encode(pending.envelope(envelope_id)))

    def _fail_pending(self) -> None:
        pending = self._pending
        self._pending = {}
        for waiting, _ in pending.values():
            try:
                waiting.on_unavailable()
            except Exception:
                log.exception("unavailable_callback_failed")
        self._check_idle()

    # ------------------------------------------------------------------ connection

    async def _run(self) -> None:
        delay = self._initial_delay
        while not self._stopping:
            try:
                ws = await connect(
                    self.url,
                    compression=None,
                    max_size=None,
                    proxy=None,
                    open_timeout=5,
                    ping_interval=5,
                    ping_timeout=10,
                    close_timeout=1,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self._stats.engine_connect_failures += 1
                if self._stats.engine_connect_failures in (1, 10) or delay >= self._max_delay:
                    log.warning(
                        "engine_connect_failed", url=self.url, error=str(exc), retry_in=delay
                    )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._max_delay)
                continue
            except InvalidURI:
                log.error("engine_url_invalid", url=self.url)
                raise
            delay = self._initial_delay
            await self._serve(ws)

    async def _serve(self, ws: ClientConnection) -> None:
        async def send(frame: bytes) -> None:
            await ws.send(frame, text=True)

        def overflow() -> None:
            log.error("engine_link_stuck", unsent_limit=SEND_BUFFER_LIMIT)
            asyncio.get_running_loop().create_task(ws.close(1011, "gateway send buffer full"))

        outbox = Outbox(
            send,
            limit=SEND_BUFFER_LIMIT,
            always_array=True,
            on_overflow=overflow,
            max_frame_bytes=MAX_FRAME_BYTES,
        )
        writer = asyncio.get_running_loop().create_task(outbox.run())
        self._ws = ws
        self._outbox = outbox
        self._up = True
        self._connected.set()
        self._disconnected.clear()
        self._stats.engine_connects += 1
        log.info("engine_connected", url=self.url)
        try:
            self._on_up()
            while True:
                frame = await ws.recv(decode=False)
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self._up = False
            self._connected.clear()
            self._disconnected.set()
            self._outbox = None
            self._ws = None
            outbox.close()
            writer.cancel()
            self._fail_pending()
            if self._stopping:
                log.info("engine_link_closed", url=self.url)
            else:
                log.warning("engine_disconnected", url=self.url)

    def _on_frame(self, frame: bytes) -> None:
        try:
            items = engine_frame_decoder.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._stats.engine_bad_frames += 1
            log.error("engine_frame_invalid", error=str(exc))
            return
        if not isinstance(items, list):
            items = [items]
        pending = self._pending
        latency = self._stats.engine_latency
        now = time.perf_counter()
        for item in items:
            try:
                if isinstance(item, EngineReply):
                    entry = pending.pop(item.id, None)
                    if entry is None:
                        continue
                    latency.observe(now - entry[1])
                    entry[0].on_reply(item.messages)
                else:
                    self._on_push(item.events)
            except Exception:
                log.exception("engine_message_failed")
        if self._idle is not None:
            self._check_idle()
