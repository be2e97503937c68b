"""A client of the engine's event port (``exchange.protocol.internal``) that never gives up.

Used by every consumer of the sequenced event stream (the market-data relay, the exporter).
It connects, sends ``StreamRequest(since)``, and hands the consumer what arrives:

- ``on_snapshot(snapshot, requested)``: an ``EngineSnapshot``; ``requested`` is the ``since``
  that was asked for (None, or a seq the engine could not serve).
- ``on_events(events)``: a list of sequenced engine events, gapless and increasing, each
  ``seq`` exactly one more than the one before (duplicates already dropped). Events without a
  ``seq`` (errors addressed to a requester) are dropped here: they are nobody's business on
  the stream.
- ``on_heartbeat(heartbeat)``: an ``EngineHeartbeat``.
- ``on_connection(up)``: the stream went up (request sent) or down.

On a lost connection, a gap in ``seq`` or an undecodable frame it reconnects with exponential
backoff and resumes with ``since = last_seq`` (the last seq delivered), so nothing is missed
while the engine still holds the events; when it does not, the engine answers with a snapshot.
Callbacks run synchronously on the event loop, in stream order; an exception raised by one
ends ``run`` (a bug in the consumer should not be retried forever).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from exchange.protocol.codec import encode, engine_event_decoder, stream_control_decoder
from exchange.protocol.internal import EngineHeartbeat, EngineSnapshot, StreamRequest


class StreamGap(Exception):
    """The engine sent an event whose seq does not follow the last one delivered."""


class _Resubscribe(Exception):
    """The consumer asked (``resubscribe``) to stream again from another seq."""


def _ignore(*_args: Any) -> None:
    return None


class EventStream:
    """Reads the event port at ``url`` for one consumer; ``run()`` until cancelled.

    ``since``: the seq the consumer already has (None: it has nothing and wants a snapshot;
    0: it wants the whole history the engine holds). ``last_seq`` follows what was delivered.
    """

    def __init__(
        self,
        url: str,
        *,
        since: int | None,
        on_snapshot: Callable[[EngineSnapshot, int | None], None],
        on_events: Callable[[list[Any]], None],
        on_heartbeat: Callable[[EngineHeartbeat], None] = _ignore,
        on_connection: Callable[[bool], None] = _ignore,
        min_backoff: float = 0.05,
        max_backoff: float = 2.0,
        name: str = "event_stream",
    ) -> None:
        self.url = url
        self.last_seq = since
        self._on_snapshot = on_snapshot
        self._on_events = on_events
        self._on_heartbeat = on_heartbeat
        self._on_connection = on_connection
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._log = structlog.get_logger(name)
        self.connected = False
        self._resubscribe = False
        self.connects = 0
        self.gaps = 0
        self.snapshots = 0

    def resubscribe(self, since: int | None) -> None:
        """Stream again from ``since``: call from a callback; the current connection is
        dropped when the callback returns and a new request is sent at once."""
        self.last_seq = since
        self._resubscribe = True

    async def run(self) -> None:
        """Connect, stream and reconnect until cancelled. Raises only what a callback raised."""
        backoff = self._min_backoff
        failures = 0
        while True:
            retry_now = False
            try:
                async with connect(
                    self.url,
                    compression=None,
                    max_size=None,
                    open_timeout=5,
                    close_timeout=1,
                    ping_interval=10,
                    ping_timeout=20,
                ) as websocket:
                    requested = self.last_seq
                    await websocket.send(encode(StreamRequest(since=requested)), text=True)
                    self.connects += 1
                    self.connected = True
                    failures = 0
                    backoff = self._min_backoff
                    self._log.info("upstream_connected", url=self.url, since=requested)
                    self._on_connection(True)
                    await self._pump(websocket, requested)
            except _Resubscribe:
                retry_now = True
                self._log.info("upstream_resubscribe", since=self.last_seq)
            except StreamGap as gap:
                self.gaps += 1
                retry_now = True
                self._log.warning("upstream_gap", detail=str(gap), resume_since=self.last_seq)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._log.error("upstream_bad_frame", error=str(exc))
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    self._log.warning(
                        "upstream_unavailable", url=self.url, error=repr(exc), failures=failures
                    )
            finally:
                if self.connected:
                    self.connected = False
                    self._on_connection(False)
            if not retry_now:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _pump(self, websocket: Any, requested: int | None) -> None:
        """Deliver frames until the connection ends (raises ConnectionClosed) or a gap."""
        expecting_snapshot = requested is None
        while True:
            frame: bytes = await websocket.recv(decode=False)
            if frame[:1] == b"[" or frame.lstrip()[:1] == b"[":
                if expecting_snapshot:
                    raise StreamGap("events before the snapshot that was asked for")
                events = engine_event_decoder.decode(frame)
                if events:
                    self._deliver(events)
                    self._check_resubscribe()
                continue
            control = stream_control_decoder.decode(frame)
            if isinstance(control, EngineSnapshot):
                expecting_snapshot = False
                self.snapshots += 1
                self.last_seq = control.seq
                self._on_snapshot(control, requested)
                self._check_resubscribe()
            else:
                self._on_heartbeat(control)

    def _check_resubscribe(self) -> None:
        if self._resubscribe:
            self._resubscribe = False
            raise _Resubscribe

    def _deliver(self, events: list[Any]) -> None:
        last = self.last_seq
        assert last is not None
        first = getattr(events[0], "seq", None)
        final = getattr(events[-1], "seq", None)
        if first == last + 1 and final == last + len(events):
            # The common case: one contiguous run, nothing to filter.
            self.last_seq = final
            self._on_events(events)
            return
        kept: list[Any] = []
        for event in events:
            seq = getattr(event, "seq", None)
            if seq is None or seq <= last:
                continue
            if seq != last + 1:
                if kept:
                    self.last_seq = last
                    self._on_events(kept)
                raise StreamGap(f"got seq {seq} after {last}")
            kept.append(event)
            last = seq
        if kept:
            self.last_seq = last
            self._on_events(kept)
