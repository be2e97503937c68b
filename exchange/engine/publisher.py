"""Fan-out of the engine's output: every event encoded once, staged, released once per loop
iteration after the journal commit.

What goes where:

- every event with a ``seq`` -> the event port (all live subscribers) and the history ring;
- the private messages of a gateway's command -> that gateway, inside the ``EngineReply`` for
  the envelope (all of them, whichever account they belong to, plus ``error``s);
- execution reports and account updates -> also every *other* gateway as ``EnginePush``
  (the rule is ``exchange.protocol.internal.fans_out``; the same account may be logged in
  there; fills of resting orders belong to accounts that may live anywhere); the frames are
  built by ``codec.encode_reply`` / ``encode_push``. ``cancel_reject`` / ``cancel_all_done``
  only ever interest the requesting session, so they are not pushed. Timer commands (revalue)
  have no origin: their account updates are pushed to every gateway.

Staging and release: results are staged while commands run; the first staged item schedules
``flush`` with ``call_soon``, and the command port calls ``release_now`` after each frame it
handled (its replies leave without waiting for the next loop iteration: ~10% more throughput
end to end). Everything staged between two flushes becomes one *group*:
the events, each gateway's frames, and a snapshot for the subscribers waiting for one. The
group goes to the committer (``exchange.engine.group_commit``), which releases it once its
commands are durable: one frame per subscriber (the events joined once and shared by all
subscribers) and one frame per gateway. Groups are released in order; nothing is acknowledged
before it is committed. With ``--fsync always`` the loop goes on executing commands while a
group waits for its fsync, so the core may be ahead of what was released.

Snapshots are built inside ``flush``, when the core's state is exactly the state after the
group's last event, and sent at the group's release, right after its events: a subscriber
that joins there misses and repeats nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from exchange.engine.group_commit import Committer, ImmediateCommit
from exchange.engine.history import EventHistory
from exchange.engine.metrics import EngineStats
from exchange.engine.sequencer import Sequencer
from exchange.protocol.codec import encode, encode_push, encode_reply
from exchange.protocol.internal import broadcast, fans_out
from exchange.protocol.messages import (
    AccountUpdate,
    CancelAllDone,
    CancelReject,
    Error,
    ExecutionReport,
    Fill,
    MarketStatus,
    News,
    RoundStarted,
)
from exchange.service.outbox import Outbox

_PUSHED = frozenset(
    kind
    for kind in (
        ExecutionReport,
        AccountUpdate,
        CancelReject,
        CancelAllDone,
        News,
        RoundStarted,
        MarketStatus,
    )
    if fans_out(str(kind.__struct_config__.tag)) or broadcast(str(kind.__struct_config__.tag))
)
"""The events pushed to every other gateway too (``internal.fans_out``: private events of
accounts that may be logged in there; ``internal.broadcast``: news and rounds for everyone)."""


class GatewayPeer:
    """A gateway connected to the command port: its outbox and what is staged for it."""

    __slots__ = ("_push", "_staged", "dirty", "name", "outbox")

    def __init__(self, name: str, outbox: Outbox) -> None:
        self.name = name
        self.outbox = outbox
        self._staged: list[bytes] = []
        self._push: list[bytes] | None = None
        self.dirty = False

    def stage_reply(self, envelope_id: int, messages: list[bytes]) -> None:
        """Stage the ``EngineReply`` for ``envelope_id`` (``messages`` already encoded)."""
        if self._push is not None:
            self._close_push()
        self._staged.append(encode_reply(envelope_id, messages))

    def stage_push(self, events: list[bytes]) -> None:
        """Stage private events for an ``EnginePush`` (runs of pushes merge into one)."""
        if self._push is None:
            self._push = list(events)
        else:
            self._push.extend(events)

    def _close_push(self) -> None:
        events = self._push or []
        self._push = None
        self._staged.append(encode_push(events))

    def take(self) -> list[bytes]:
        """Everything staged, in staging order (to be handed to the outbox as one frame)."""
        if self._push is not None:
            self._close_push()
        staged = self._staged
        self._staged = []
        self.dirty = False
        return staged


class Subscriber:
    """An event-port consumer in the live stream."""

    __slots__ = ("name", "outbox", "released_seq", "removed")

    def __init__(self, name: str, outbox: Outbox, released_seq: int = 0) -> None:
        self.name = name
        self.outbox = outbox
        self.released_seq = released_seq
        """The seq of the last event handed to this subscriber's outbox."""
        self.removed = False
        """Set when the subscriber left (a snapshot built for it is not sent)."""


class _Group:
    """One loop iteration's output, waiting for its commit."""

    __slots__ = ("events", "first_seq", "frames", "snapshot", "waiters")

    def __init__(
        self,
        first_seq: int,
        events: list[bytes],
        frames: list[tuple[GatewayPeer, list[bytes]]],
        waiters: list[Subscriber],
        snapshot: bytes,
    ) -> None:
        self.first_seq = first_seq
        self.events = events
        self.frames = frames
        self.waiters = waiters
        self.snapshot = snapshot


class Publisher:
    """Stages results, commits, releases. One per engine; used from the event loop only."""

    def __init__(
        self,
        sequencer: Sequencer,
        history: EventHistory,
        stats: EngineStats,
        build_snapshot: Callable[[], bytes],
        schedule: Callable[[Callable[[], None]], Any] | None = None,
        committer: Committer | None = None,
    ) -> None:
        self._committer = committer or ImmediateCommit(sequencer)
        self._history = history
        self._stats = stats
        self._build_snapshot = build_snapshot
        self._schedule = schedule or (
            lambda callback: asyncio.get_running_loop().call_soon(callback)
        )
        self._scheduled = False
        self._staged: list[bytes] = []
        self._staged_first = 0
        self._gateways: list[GatewayPeer] = []
        self._dirty: list[GatewayPeer] = []
        self._live: dict[Subscriber, None] = {}
        self._snapshot_waiters: list[Subscriber] = []

    @property
    def released_seq(self) -> int:
        """The seq of the last event released to subscribers and gateways (the history holds
        exactly the released events)."""
        return self._history.last_seq

    # ------------------------------------------------------------------ peers

    @property
    def gateways(self) -> list[GatewayPeer]:
        return self._gateways

    @property
    def subscribers(self) -> list[Subscriber]:
        return list(self._live)

    def add_gateway(self, peer: GatewayPeer) -> None:
        self._gateways.append(peer)

    def remove_gateway(self, peer: GatewayPeer) -> None:
        if peer in self._gateways:
            self._gateways.remove(peer)
        if peer in self._dirty:
            self._dirty.remove(peer)

    def join_live(self, subscriber: Subscriber) -> None:
        """Add a subscriber that has every event up to ``released_seq`` (call without awaiting
        after checking that, so no release slips in between)."""
        subscriber.removed = False
        subscriber.released_seq = self.released_seq
        self._live[subscriber] = None

    def request_snapshot(self, subscriber: Subscriber) -> None:
        """Send ``subscriber`` a snapshot at the next release, then the live stream."""
        subscriber.removed = False
        self._snapshot_waiters.append(subscriber)
        self._request_flush()

    def remove_subscriber(self, subscriber: Subscriber) -> None:
        subscriber.removed = True
        self._live.pop(subscriber, None)
        if subscriber in self._snapshot_waiters:
            self._snapshot_waiters.remove(subscriber)

    # ------------------------------------------------------------------ staging

    def publish(self, events: list[Any], origin: GatewayPeer | None) -> list[bytes]:
        """Encode and stage the events of one command; return the encoded messages that
        belong in the origin's reply (all private messages and errors, in order)."""
        stats = self._stats
        staged = self._staged
        reply: list[bytes] = []
        push: list[bytes] = []
        pushed = _PUSHED
        count = 0
        for event in events:
            kind = type(event)
            data = encode(event)
            if kind is Error:
                reply.append(data)
                continue
            if not staged:
                self._staged_first = event.seq
            staged.append(data)
            count += 1
            if kind in pushed:
                push.append(data)
            if kind is ExecutionReport:
                reply.append(data)
                exec_type = event.exec_type
                if exec_type == "new":
                    stats.orders += 1
                elif exec_type == "rejected":
                    stats.rejects[event.reject_reason or "none"] += 1
            elif kind is AccountUpdate:
                reply.append(data)
            elif kind is Fill:
                stats.trades += 1
            elif kind is CancelReject:
                reply.append(data)
                stats.rejects[event.reject_reason] += 1
            elif (
                kind is CancelAllDone
                or kind is News
                or kind is RoundStarted
                or kind is MarketStatus
            ):
                reply.append(data)
        stats.events += count
        if push:
            for peer in self._gateways:
                if peer is not origin:
                    peer.stage_push(push)
                    self._mark(peer)
        if count:
            self._request_flush()
        return reply

    def stage_reply(self, peer: GatewayPeer, envelope_id: int, messages: list[bytes]) -> None:
        """Stage the reply to one envelope for ``peer``."""
        peer.stage_reply(envelope_id, messages)
        self._mark(peer)

    def _mark(self, peer: GatewayPeer) -> None:
        if not peer.dirty:
            peer.dirty = True
            self._dirty.append(peer)
        self._request_flush()

    def _request_flush(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)

    # ------------------------------------------------------------------ release

    def flush(self) -> None:
        """Hand everything staged to the committer as one group (called once per loop
        iteration); it is released when its commands are durable."""
        self._scheduled = False
        if not (self._staged or self._dirty or self._snapshot_waiters):
            return  # released early (``release_now``)
        events = self._staged
        self._staged = []
        frames: list[tuple[GatewayPeer, list[bytes]]] = []
        if self._dirty:
            dirty = self._dirty
            self._dirty = []
            frames = [(peer, peer.take()) for peer in dirty]
        waiters, self._snapshot_waiters = self._snapshot_waiters, []
        snapshot = self._build_snapshot() if waiters else b""
        group = _Group(self._staged_first, events, frames, waiters, snapshot)
        self._committer.commit(lambda: self._release(group))

    def release_now(self) -> None:
        """Flush what is staged now instead of at the end of the loop iteration."""
        if self._scheduled:
            self.flush()

    def drain(self) -> None:
        """Flush, then synchronously commit and release everything (snapshots, shutdown)."""
        self.flush()
        self._committer.drain()

    def _release(self, group: _Group) -> None:
        events = group.events
        if events:
            self._history.extend(group.first_seq, events)
            last = self._history.last_seq
            chunk = b",".join(events)
            for subscriber in tuple(self._live):
                subscriber.outbox.put(chunk)
                subscriber.released_seq = last
        for peer, frames in group.frames:
            peer.outbox.put_many(frames)
        for subscriber in group.waiters:
            if not subscriber.removed:
                subscriber.outbox.put_frame(group.snapshot)
                self._stats.snapshots_sent += 1
                self.join_live(subscriber)
