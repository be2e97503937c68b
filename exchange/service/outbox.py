"""A per-connection send queue that batches JSON messages into as few frames as possible.

Producers ``put`` encoded JSON values without awaiting; one writer task (``run``) sends them,
unless the producing task sends them itself right away with ``flush`` (one loop iteration
sooner).
Everything queued while the previous frame was being written goes out together, so batching
grows with load by itself: at most one frame per loop iteration when the peer keeps up, larger
frames when it does not. The queue is bounded in bytes: past ``limit`` the ``on_overflow``
callback runs once and further data is dropped (the owner closes the connection; the peer
resynchronises). Nothing here knows about websockets: ``send`` is any coroutine function that
writes one text frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

Send = Callable[[bytes], Awaitable[None]]


class Outbox:
    """Batches queued JSON values into frames for one connection.

    ``put(item)``: ``item`` is one encoded JSON value (or, with ``always_array``, a
    comma-joined run of values). Consecutive items become one frame: a JSON array, or the bare
    value when there is exactly one and ``always_array`` is false. ``put_frame(frame)`` queues
    a frame that is sent on its own, after everything queued before it. Frames are split so
    that an array frame stays under ``max_frame_bytes`` (it always holds at least one item).
    """

    __slots__ = (
        "_always_array",
        "_closed",
        "_idle",
        "_max_frame",
        "_on_overflow",
        "_segments",
        "_send",
        "_sending",
        "_wake",
        "frames_sent",
        "limit",
        "overflowed",
        "queued_bytes",
    )

    def __init__(
        self,
        send: Send,
        *,
        limit: int,
        always_array: bool,
        on_overflow: Callable[[], None] | None = None,
        max_frame_bytes: int = 1 << 20,
    ) -> None:
        self._send = send
        self.limit = limit
        self._always_array = always_array
        self._on_overflow = on_overflow
        self._max_frame = max_frame_bytes
        self._segments: list[list[bytes] | bytes] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._sending = False
        self.queued_bytes = 0
        self.overflowed = False
        self.frames_sent = 0

    # ------------------------------------------------------------------ producers

    def put(self, item: bytes) -> None:
        """Queue one JSON value to be sent in the next array frame. Never blocks or raises."""
        if self._closed or self.overflowed:
            return
        segments = self._segments
        last = segments[-1] if segments else None
        if isinstance(last, list):
            last.append(item)
        else:
            segments.append([item])
        self._queued(len(item))

    def put_many(self, items: Iterable[bytes]) -> None:
        """Queue several JSON values (in order) for the next array frame."""
        for item in items:
            self.put(item)

    def put_frame(self, frame: bytes) -> None:
        """Queue ``frame`` to be sent as a frame of its own, after what is queued already."""
        if self._closed or self.overflowed:
            return
        self._segments.append(frame)
        self._queued(len(frame))

    def discard(self) -> None:
        """Drop everything queued and not yet handed to the writer."""
        self._segments = []
        self.queued_bytes = 0
        self._idle.set()

    def _queued(self, size: int) -> None:
        self.queued_bytes += size
        if self.queued_bytes > self.limit:
            self.overflowed = True
            self._segments = []
            self.queued_bytes = 0
            if self._on_overflow is not None:
                self._on_overflow()
            return
        self._idle.clear()
        self._wake.set()

    # ------------------------------------------------------------------ writer

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop accepting data and let ``run`` return once it has sent what it holds."""
        self._closed = True
        self._wake.set()

    async def drain(self) -> None:
        """Wait until everything queued so far has been handed to ``send``."""
        await self._idle.wait()

    async def flush(self) -> None:
        """Send what is queued now from the calling task, saving the writer task's wake-up
        (one event-loop iteration of latency). A no-op when the writer is already sending:
        it sends what follows in order. Call it only where waiting for the peer to read
        (flow control) is acceptable to the caller. Never raises except CancelledError."""
        if self._sending or not self._segments or self._closed:
            return
        await self._send_queued()
        self._wake.set()  # the writer re-checks: data queued meanwhile, or a close

    async def run(self) -> None:
        """Send queued data until ``close`` (or a failed send). Never raises except
        CancelledError; a failed send (connection gone) ends the loop quietly."""
        wake = self._wake
        try:
            while True:
                if self._segments and not self._sending:
                    await self._send_queued()
                    continue
                if not self._sending:
                    self._idle.set()
                    if self._closed:
                        return
                await wake.wait()
                wake.clear()
        finally:
            self._idle.set()

    async def _send_queued(self) -> None:
        """Send every queued segment, including what is queued meanwhile, in order."""
        self._sending = True
        try:
            while self._segments:
                segments = self._segments
                self._segments = []
                self.queued_bytes = 0
                for segment in segments:
                    if isinstance(segment, list):
                        for frame in self._frames(segment):
                            await self._send(frame)
                            self.frames_sent += 1
                    else:
                        await self._send(segment)
                        self.frames_sent += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            self._closed = True
            self._segments = []
        finally:
            self._sending = False
        if not self._segments:
            self._idle.set()

    def _frames(self, items: list[bytes]) -> Iterable[bytes]:
        if len(items) == 1:
            item = items[0]
            return (b"[" + item + b"]",) if self._always_array else (item,)
        limit = self._max_frame
        total = sum(len(item) + 1 for item in items)
        if total <= limit:
            return (b"[" + b",".join(items) + b"]",)
        frames: list[bytes] = []
        start = 0
        size = 0
        for index, item in enumerate(items):
            if size and size + len(item) + 1 > limit:
                frames.append(b"[" + b",".join(items[start:index]) + b"]")
                start = index
                size = 0
            size += len(item) + 1
        frames.append(b"[" + b",".join(items[start:]) + b"]")
        return frames
