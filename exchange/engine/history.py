"""The in-memory ring of recently released events, encoded, for ``StreamRequest(since=N)``.

Events are stored as the exact bytes every subscriber received, indexed by ``seq`` (events are
gapless, so ``seq`` maps to a ring slot by arithmetic: O(1) lookups and slices, unlike a
deque). Only events already released to subscribers (journaled, sent) are stored, so a
consumer catching up from here and then joining the live stream sees every event exactly once.
"""

from __future__ import annotations


class EventHistory:
    """The last ``capacity`` events, by seq. ``capacity`` 0 keeps nothing."""

    __slots__ = ("_capacity", "_first_seq", "_ring", "_size", "_start", "last_seq")

    def __init__(self, capacity: int, last_seq: int = 0) -> None:
        self._capacity = max(0, capacity)
        self._ring: list[bytes | None] = [None] * self._capacity
        self._start = 0  # ring slot of the oldest event
        self._size = 0
        self._first_seq = last_seq + 1
        self.last_seq = last_seq
        """The seq of the newest event released (stored or not)."""

    def __len__(self) -> int:
        return self._size

    @property
    def first_seq(self) -> int:
        """The seq of the oldest event held (``last_seq + 1`` when empty)."""
        return self._first_seq

    def extend(self, first_seq: int, events: list[bytes]) -> None:
        """Append ``events``, whose seqs are ``first_seq, first_seq + 1, ...``.

        Raises ValueError if they do not follow ``last_seq`` (a gap would be a bug).
        """
        if not events:
            return
        if first_seq != self.last_seq + 1:
            raise ValueError(f"events start at {first_seq}, expected {self.last_seq + 1}")
        self.last_seq = first_seq + len(events) - 1
        capacity = self._capacity
        if capacity == 0:
            self._first_seq = self.last_seq + 1
            return
        if len(events) >= capacity:
            self._ring = list(events[-capacity:])
            self._start = 0
            self._size = capacity
            self._first_seq = self.last_seq - capacity + 1
            return
        ring = self._ring
        end = (self._start + self._size) % capacity
        for event in events:
            ring[end] = event
            end += 1
            if end == capacity:
                end = 0
        size = self._size + len(events)
        if size > capacity:
            dropped = size - capacity
            self._start = (self._start + dropped) % capacity
            self._first_seq += dropped
            size = capacity
        self._size = size

    def covers(self, since: int) -> bool:
        """Whether every event after ``since`` (up to ``last_seq``) can be served from here."""
        return self._first_seq - 1 <= since <= self.last_seq

    def after(self, since: int, limit: int) -> list[bytes]:
        """Up to ``limit`` events with seq > ``since``, oldest first. Needs ``covers(since)``."""
        if not self.covers(since):
            raise ValueError(f"seq {since} is not covered ({self._first_seq}..{self.last_seq})")
        count = min(limit, self.last_seq - since)
        if count <= 0:
            return []
        capacity = self._capacity
        begin = (self._start + since + 1 - self._first_seq) % capacity
        end = begin + count
        if end <= capacity:
            chunk = self._ring[begin:end]
        else:
            chunk = self._ring[begin:] + self._ring[: end - capacity]
        return chunk  # type: ignore[return-value]
