"""The relay's I/O shell: the public WebSocket/HTTP port, the upstream event stream, fan-out.

Plain HTTP GETs on the port are answered before any WebSocket handshake: the web dashboard
(``/`` and ``/static/…``, ``marketdata.dashboard``), then ``/healthz``, ``/metrics`` and the
JSON API (``marketdata.http_api``).

What the feed says to send is collected in a ``Batch`` and written once per loop iteration
(``_flush``): every connection gets one frame holding everything due to it since the last
flush, and connections due the same messages share a frame built once. Under load more
upstream frames arrive per iteration, so frames grow and their number does not. A flush also
happens before anything can change who is subscribed to what (requests, engine snapshots),
before a heartbeat, and whenever ``FLUSH_BYTES`` of messages are waiting.

Everything the relay writes goes through ``websockets.broadcast``, which pushes a frame
synchronously into each subscriber's transport, so one slow reader never makes the relay wait.
After every flush the write buffers are checked: a connection holding more than
``max_buffered_bytes`` unsent is a slow consumer. It gets an ``error`` ``slow_consumer``
(after what it already has), is dropped from every channel, and closed with 1013; if it does
not complete the closing handshake within ``slow_grace`` seconds its TCP connection is
aborted, so its memory is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from exchange.protocol.codec import encode, marketdata_request_decoder
from exchange.protocol.config import MarketDataSection
from exchange.protocol.internal import EngineHeartbeat, EngineSnapshot
from exchange.protocol.messages import Error, InstrumentInfo
from exchange.service.event_stream import EventStream
from exchange.service.http import http_handler, response
from exchange.service.stats import labelled, registry_for
from marketdata.batching import MAX_BATCH_BYTES, Batch
from marketdata.dashboard import dashboard_route, dashboard_url
from marketdata.feed import MarketFeed
from marketdata.http_api import market_routes

INVALID_LIMIT = 100
"""More than this many ``invalid_message`` errors within ``INVALID_WINDOW`` s closes 1008."""
INVALID_WINDOW = 10.0
MAX_FRAME_BYTES = 65536
CLOSE_TIMEOUT = 2.0
"""Seconds a closing handshake may take before the TCP connection is dropped."""
FLUSH_BYTES = MAX_BATCH_BYTES
"""Flush at once, without waiting for the end of the loop iteration, when this many bytes of
messages are waiting (a burst of upstream frames in one iteration stays bounded)."""

_SLOW_FRAME = encode(
    Error(code="slow_consumer", text="too far behind: unsent data over the relay's bound")
)
_BINARY = Error(code="invalid_message", text="binary frames are not supported; send JSON text")


ProcessRequest = Callable[[ServerConnection, Request], Response | None]


def _with_dashboard(handler: ProcessRequest) -> ProcessRequest:
    """``handler`` with the web dashboard's page and files in front (PROTOCOL.md §7)."""
    static = dashboard_route()

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if "upgrade" not in request.headers.get("Connection", "").lower():
            answer = static(urlsplit(request.path).path)
            if answer is not None:
                return response(*answer)
        return handler(connection, request)

    return process_request


class RelayStats:
    """Plain counters on the hot path; Prometheus families on scrape."""

    def __init__(self, relay: MarketDataRelay) -> None:
        self._relay = relay
        self.messages_out: Counter[str] = Counter()
        self.frames_out = 0
        self.frames_in = 0
        self.invalid_messages = 0
        self.slow_consumers = 0
        self.upstream_lag = 0.0
        self.engine_last_seq = 0

    def collect(self) -> Iterable[Metric]:
        relay = self._relay
        feed = relay.feed
        stream = relay.stream
        yield labelled(
            CounterMetricFamily,
            "marketdata_messages_out",
            "Messages written, per recipient",
            "channel",
            self.messages_out,
        )
        yield CounterMetricFamily(
            "marketdata_frames_out",
            "Frames written, per recipient (a frame holds one message or a batch)",
            value=self.frames_out,
        )
        yield labelled(
            GaugeMetricFamily,
            "marketdata_subscribers",
            "Subscriptions per channel kind",
            "channel",
            feed.subscriber_counts(),
        )
        yield GaugeMetricFamily(
            "marketdata_connections", "Open client connections", value=len(relay.connections)
        )
        buffered = [
            ws.transport.get_write_buffer_size()
            for ws in relay.connections
            if ws.transport is not None
        ]
        yield GaugeMetricFamily(
            "marketdata_client_buffered_bytes",
            "Unsent bytes in client write buffers, summed over connections",
            value=sum(buffered),
        )
        yield GaugeMetricFamily(
            "marketdata_client_buffered_bytes_max",
            "Unsent bytes of the most backlogged client (slow consumer above max_buffered_bytes)",
            value=max(buffered, default=0),
        )
        yield CounterMetricFamily(
            "marketdata_slow_consumers", "Clients cut off as slow", value=self.slow_consumers
        )
        yield CounterMetricFamily(
            "marketdata_requests", "Request frames received", value=self.frames_in
        )
        yield CounterMetricFamily(
            "marketdata_invalid_messages",
            "invalid_message errors sent",
            value=self.invalid_messages,
        )
        yield GaugeMetricFamily(
            "marketdata_upstream_lag_seconds",
            "Wall clock minus the engine ts of the last event applied",
            value=self.upstream_lag,
        )
        yield GaugeMetricFamily(
            "marketdata_upstream_seq", "Last engine seq applied", value=feed.last_seq or 0
        )
        yield GaugeMetricFamily(
            "marketdata_upstream_behind",
            "Engine's last seq (heartbeat) minus the last seq applied",
            value=max(0, self.engine_last_seq - (feed.last_seq or 0)),
        )
        yield GaugeMetricFamily(
            "marketdata_upstream_connected", "1 while streaming", value=int(stream.connected)
        )
        yield CounterMetricFamily(
            "marketdata_upstream_connects", "Event-port connections made", value=stream.connects
        )
        yield CounterMetricFamily(
            "marketdata_resyncs", "Engine snapshots applied after the first", value=feed.resyncs
        )


class MarketDataRelay:
    """``start()`` binds the port and starts streaming; ``stop()`` closes everything."""

    def __init__(
        self,
        *,
        upstream: str,
        instruments: list[InstrumentInfo],
        settings: MarketDataSection,
        host: str = "127.0.0.1",
        port: int = 9010,
        slow_grace: float = 5.0,
        socket_send_buffer: int | None = None,
    ) -> None:
        """``socket_send_buffer``: SO_SNDBUF for client sockets (None: the kernel's autotuning,
        which may hide megabytes per client before ``max_buffered_bytes`` sees any)."""
        self.host = host
        self.port = port
        self.settings = settings
        self.max_buffered = settings.max_buffered_bytes
        self.slow_grace = slow_grace
        self.socket_send_buffer = socket_send_buffer
        self.feed: MarketFeed[ServerConnection] = MarketFeed(
            instruments, settings.monitor_tokens, settings.trade_history
        )
        self.connections: set[ServerConnection] = set()
        self._batch: Batch[ServerConnection] = Batch()
        self._flush_handle: asyncio.Handle | None = None
        self.stats = RelayStats(self)
        self.registry: CollectorRegistry = registry_for(self.stats.collect)
        self.stream = EventStream(
            upstream,
            since=None,
            on_snapshot=self._on_snapshot,
            on_events=self._on_events,
            on_heartbeat=self._on_heartbeat,
            name="marketdata.upstream",
        )
        self._log = structlog.get_logger("marketdata")
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.synced = asyncio.Event()
        """Set once the first engine snapshot has been applied."""

    # ------------------------------------------------------------------ lifecycle

    def ready(self) -> bool:
        """Ready when it holds the engine's state and is streaming."""
        return self.feed.synced and self.stream.connected

    async def start(self) -> int:
        """Bind (port 0: any free port), start the upstream and heartbeats; returns the port."""
        routes = [market_routes(self.feed, self.settings.trade_history)]
        self._server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            process_request=_with_dashboard(http_handler(self.ready, self.registry, routes)),
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=CLOSE_TIMEOUT,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [
            asyncio.create_task(self.stream.run(), name="marketdata-upstream"),
            asyncio.create_task(self._heartbeats(), name="marketdata-heartbeat"),
        ]
        self._log.info("relay_started", port=self.port, upstream=self.stream.url)
        self._log.info("dashboard", url=dashboard_url(self.host, self.port))
        return self.port

    async def wait_failed(self) -> BaseException | None:
        """Wait until a background task dies (a bug); returns its exception."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled():
                return task.exception()
        return None

    async def stop(self) -> None:
        """Stop streaming and close every connection (1001); returns within about
        ``CLOSE_TIMEOUT`` + 1 s even when clients do not answer. Never raises."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT + 1)
            for websocket in list(self._server.connections):
                websocket.transport.abort()
        for task in list(self._closing):
            task.cancel()
        self._log.info("relay_stopped")

    # ------------------------------------------------------------------ upstream

    def _on_snapshot(self, snapshot: EngineSnapshot, requested: int | None) -> None:
        resync = self.feed.synced
        self._flush()  # what is due from earlier events, before the audiences may change
        self._batch.add(self.feed.apply_snapshot(snapshot), self.stats.messages_out)
        self._flush()
        self._log.info(
            "book_resync" if resync else "synced",
            seq=snapshot.seq,
            requested_since=requested,
            subscribers=len(self.connections),
        )
        self.synced.set()

    def _on_events(self, events: list[Any]) -> None:
        batch = self._batch
        batch.add(self.feed.apply_events(events), self.stats.messages_out)
        ts = getattr(events[-1], "ts", None)
        if ts:
            self.stats.upstream_lag = max(0.0, (time.time_ns() - ts) / 1e9)
        if batch.nbytes >= FLUSH_BYTES:
            self._flush()
        elif batch and self._flush_handle is None:
            # Once the upstream frames already received are all applied: one frame each.
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _on_heartbeat(self, heartbeat: EngineHeartbeat) -> None:
        self.stats.engine_last_seq = heartbeat.last_seq

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self.connections:
                now = time.time_ns()
                frame = self.feed.heartbeat(now)
                self._batch.add([(self.connections, frame, "heartbeat")], self.stats.messages_out)
                self._batch.add(self.feed.leaderboard_tick(now), self.stats.messages_out)
                self._flush()

    # ------------------------------------------------------------------ clients

    async def _serve_connection(self, websocket: ServerConnection) -> None:
        if self.socket_send_buffer is not None:
            sock = websocket.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.socket_send_buffer)
        feed = self.feed
        feed.connect(websocket)
        self.connections.add(websocket)
        invalid: deque[float] = deque()
        batch = self._batch
        counts = self.stats.messages_out
        try:
            while True:
                frame = await websocket.recv()
                self.stats.frames_in += 1
                if websocket not in self.connections:
                    continue  # cut off: closing, ignore what it still sends
                if isinstance(frame, str):
                    messages, _ = marketdata_request_decoder.decode_frame(frame)
                else:
                    messages = [_BINARY]
                # Earlier events' messages go out first: the replies reflect the state after
                # them, and a subscribe or unsubscribe changes who they are due to.
                self._flush()
                now = time.time_ns()
                for message in messages:
                    if type(message) is Error:
                        invalid.append(time.monotonic())
                        self.stats.invalid_messages += 1
                    batch.add(feed.handle(websocket, message, now), counts)
                self._flush()  # the replies to one request frame: one frame
                if len(invalid) > INVALID_LIMIT:
                    horizon = time.monotonic() - INVALID_WINDOW
                    while invalid and invalid[0] < horizon:
                        invalid.popleft()
                    if len(invalid) > INVALID_LIMIT and websocket in self.connections:
                        self._drop(websocket)
                        await websocket.close(1008, "too many invalid messages")
                        return
        except ConnectionClosed:
            pass
        finally:
            self._drop(websocket)

    def _flush(self) -> None:
        """Write everything collected, one frame per group of connections due the same
        messages, then cut off slow consumers. Never raises."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        frames = self._batch.frames()
        if not frames:
            return
        written = 0
        for connections, frame in frames:
            broadcast(connections, frame, text=True)
            written += len(connections)
        self.stats.frames_out += written
        self._check_slow(self.connections)

    def _check_slow(self, connections: Iterable[ServerConnection]) -> None:
        limit = self.max_buffered
        slow = [
            ws
            for ws in connections
            if ws.transport is not None and ws.transport.get_write_buffer_size() > limit
        ]
        for websocket in slow:
            self._cut(websocket)

    def _cut(self, websocket: ServerConnection) -> None:
        """Cut a slow consumer off: no more data, an error after its backlog, close 1013."""
        buffered = websocket.transport.get_write_buffer_size()
        self._drop(websocket)
        broadcast((websocket,), _SLOW_FRAME, text=True)
        self.stats.slow_consumers += 1
        self._log.warning(
            "slow_consumer_cut", remote=str(websocket.remote_address), buffered=buffered
        )
        task = asyncio.create_task(self._close_slow(websocket))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_slow(self, websocket: ServerConnection) -> None:
        # close() waits for the peer to read our backlog; abort when it will not in time.
        abort = asyncio.get_running_loop().call_later(self.slow_grace, websocket.transport.abort)
        try:
            await websocket.close(1013, "slow consumer")
        finally:
            abort.cancel()

    def _drop(self, websocket: ServerConnection) -> None:
        self.connections.discard(websocket)
        self.feed.disconnect(websocket)
