"""Coalescing of the relay's outgoing messages into one frame per connection (pure: no I/O).

A ``Batch`` collects the ``Outgoing`` triples ``(audience, frame, kind)`` that ``MarketFeed``
returns, in the order they must be written. ``frames()`` turns everything collected into the
frames to write: each connection gets every message due to it, in order, in ONE frame (a JSON
array when there are several, the bare object when there is one; PROTOCOL.md §2 allows both).

Encode once: every message is encoded once by the feed, and connections that are due the same
sequence share one frame, built once. Two connections are due the same sequence exactly when
they belong to the same audiences among the collected messages (the same channels, and for a
book the same (symbol, depth) group, whose members share one ``prev_seq`` chain). So the
connections are grouped by that membership, and each group's frame is a byte-level join of
the already encoded messages. Building costs O(members of each distinct audience + parts
written per group), never O(messages x connections).

Audiences are the feed's live sets: call ``frames()`` before anything can change who is in
them (a subscribe, an unsubscribe, a resync), or a connection would get messages that were due
before it joined, or miss ones due before it left.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Generic, TypeVar

from marketdata.feed import Outgoing

C = TypeVar("C")

MAX_BATCH_BYTES = 65536
"""A frame holds messages up to about this many bytes; a run that would grow past it is split
over several frames (one message larger than this still goes alone, in one frame)."""


class Batch(Generic[C]):
    """Messages due to connections since the last ``frames()``, in order.

    Connections are opaque hashable objects (the shell's WebSocket connections)."""

    __slots__ = ("_audiences", "_index", "_items", "max_frame_bytes", "nbytes")

    def __init__(self, max_frame_bytes: int = MAX_BATCH_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._audiences: list[Collection[C]] = []
        self._index: dict[int, int] = {}
        """id(audience) -> its position in ``_audiences`` (which keeps it alive)."""
        self._items: list[tuple[int, bytes]] = []
        self.nbytes = 0
        """Bytes of the messages collected (each counted once, whatever its audience)."""

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, outgoing: Iterable[Outgoing], counts: Counter[str] | None = None) -> None:
        """Collect ``outgoing`` after what is already held; ``counts[kind]`` grows by each
        message's number of recipients. Messages with an empty audience are dropped."""
        index = self._index
        audiences = self._audiences
        items = self._items
        size = 0
        for audience, frame, kind in outgoing:
            if not audience:
                continue
            position = index.get(id(audience))
            if position is None:
                position = index[id(audience)] = len(audiences)
                audiences.append(audience)
            items.append((position, frame))
            size += len(frame)
            if counts is not None:
                counts[kind] += len(audience)
        self.nbytes += size

    def frames(self) -> list[tuple[Collection[C], bytes]]:
        """Empty the batch; returns ``(connections, frame)`` pairs to write in this order. A
        connection appears in one pair, or in several consecutive ones when its messages
        exceed ``max_frame_bytes``. Never raises."""
        items = self._items
        audiences = self._audiences
        self._items = []
        self._audiences = []
        self._index = {}
        self.nbytes = 0
        if not items:
            return []
        if len(audiences) == 1:  # one audience: everyone in it gets everything
            return [(audiences[0], frame) for frame in self._join([f for _, f in items])]
        # Which audiences each connection is in, as a bit mask over their positions.
        masks: dict[C, int] = {}
        get = masks.get
        for position, audience in enumerate(audiences):
            bit = 1 << position
            for conn in audience:
                masks[conn] = get(conn, 0) | bit
        groups: dict[int, tuple[list[C], list[bytes]]] = {}
        for conn, mask in masks.items():
            group = groups.get(mask)
            if group is None:
                group = groups[mask] = ([], [])
            group[0].append(conn)
        # The groups each audience reaches, then every message into each of them, in order.
        reaches: list[list[list[bytes]]] = [
            [groups[mask][1] for mask in dict.fromkeys(masks[conn] for conn in audience)]
            for audience in audiences
        ]
        for position, frame in items:
            for parts in reaches[position]:
                parts.append(frame)
        return [(conns, frame) for conns, parts in groups.values() for frame in self._join(parts)]

    def _join(self, parts: list[bytes]) -> list[bytes]:
        """``parts`` (encoded messages) as frames: an array each, a bare object when alone."""
        if len(parts) == 1:
            return parts
        limit = self.max_frame_bytes
        if sum(map(len, parts)) + len(parts) + 1 <= limit:
            return [_array(parts)]
        frames: list[bytes] = []
        run: list[bytes] = []
        size = 1
        for part in parts:
            if run and size + len(part) + 1 > limit:
                frames.append(_array(run))
                run = []
                size = 1
            run.append(part)
            size += len(part) + 1
        frames.append(_array(run))
        return frames


def _array(parts: list[bytes]) -> bytes:
    if len(parts) == 1:
        return parts[0]
    return b"[" + b",".join(parts) + b"]"
