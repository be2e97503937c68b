"""The engine shell's pure-ish parts in memory: the history ring, the sequencer's clock and
journal hook, the publisher's staging/commit/release order, and the shared Outbox."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from exchange.core import Exchange
from exchange.engine import core_config
from exchange.engine.history import EventHistory
from exchange.engine.metrics import EngineStats
from exchange.engine.publisher import GatewayPeer, Publisher, Subscriber
from exchange.engine.sequencer import Sequencer
from exchange.protocol.config import load_config
from exchange.protocol.messages import NewOrder
from exchange.service.outbox import Outbox

# ---------------------------------------------------------------------- history


def events(first: int, count: int) -> list[bytes]:
    return [b"%d" % seq for seq in range(first, first + count)]


def test_history_serves_what_it_covers() -> None:
    history = EventHistory(5)
    assert history.covers(0) and history.after(0, 10) == []
    history.extend(1, events(1, 3))
    assert history.after(0, 10) == events(1, 3)
    assert history.after(1, 1) == [b"2"]
    history.extend(4, events(4, 4))  # 7 events, capacity 5: 1 and 2 are gone
    assert (history.first_seq, history.last_seq, len(history)) == (3, 7, 5)
    assert not history.covers(1) and history.covers(2) and not history.covers(8)
    assert history.after(2, 10) == events(3, 5)
    assert history.after(5, 10) == [b"6", b"7"]
    history.extend(8, events(8, 12))  # more than the capacity at once
    assert history.after(14, 10) == events(15, 5)
    with pytest.raises(ValueError):
        history.extend(30, [b"x"])
    with pytest.raises(ValueError):
        history.after(0, 1)


def test_history_with_no_capacity_only_tracks_the_last_seq() -> None:
    history = EventHistory(0, last_seq=10)
    history.extend(11, events(11, 2))
    assert history.last_seq == 12 and history.covers(12) and not history.covers(11)


# ---------------------------------------------------------------------- sequencer


class RecordingJournal:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def append(self, seq_before: int, ts: int, account: str, command: Any) -> int:
        self.log.append(f"append {seq_before} {ts} {account}")
        return 0

    def write(self) -> None:
        self.log.append("write")

    def sync(self) -> None:
        self.log.append("sync")


def core() -> Exchange:
    return Exchange(core_config(load_config(None)))


def test_sequencer_time_never_goes_back_and_journals_first() -> None:
    clock = iter([100, 90, 120])
    log: list[str] = []
    sequencer = Sequencer(core(), journal=RecordingJournal(log), clock=lambda: next(clock))
    order = NewOrder(symbol="AAPL", side="buy", qty=1, price=185.0)
    stamps = []
    expected = []
    for _ in range(3):
        seq_before = sequencer.core.last_seq
        events = sequencer.submit("alice", order)
        stamps.append(events[0].ts)
        expected.append(f"append {seq_before} {events[0].ts} alice")
        assert events[0].seq == seq_before + 1
    assert stamps == [100, 100, 120]
    sequencer.commit()
    assert log == [*expected, "write", "sync"]


# ---------------------------------------------------------------------- publisher


class Sent:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def __call__(self, frame: bytes) -> None:
        self.frames.append(frame)


async def test_publisher_commits_before_release_and_batches_per_flush() -> None:
    log: list[str] = []
    sequencer = Sequencer(core(), journal=RecordingJournal(log))
    scheduled: list[Any] = []
    history = EventHistory(100)
    publisher = Publisher(sequencer, history, EngineStats(), lambda: b"{}", scheduled.append)
    sent = {name: Sent() for name in ("g1", "g2", "s")}
    boxes = {name: Outbox(sent[name], limit=10**6, always_array=True) for name in sent}
    writers = [asyncio.get_running_loop().create_task(box.run()) for box in boxes.values()]
    requester = GatewayPeer("g1", boxes["g1"])
    publisher.add_gateway(requester)
    publisher.add_gateway(GatewayPeer("g2", boxes["g2"]))
    subscriber = Subscriber("s", boxes["s"])
    publisher.join_live(subscriber)

    order = NewOrder(symbol="AAPL", side="buy", qty=1, price=185.0, req_id=1)
    reply = publisher.publish(sequencer.submit("alice", order), requester)
    publisher.stage_reply(requester, 7, reply)
    assert len(scheduled) == 1 and history.last_seq == 0  # nothing released yet
    assert all(box.queued_bytes == 0 for box in boxes.values())
    log.clear()
    scheduled[0]()  # the flush
    assert log == ["write", "sync"]
    assert history.last_seq == sequencer.core.last_seq == subscriber.released_seq
    for box in boxes.values():
        await box.drain()
        box.close()
    await asyncio.gather(*writers)
    [reply_frame] = [json.loads(frame) for frame in sent["g1"].frames]
    assert [item["id"] for item in reply_frame] == [7]
    assert reply_frame[0]["messages"][0]["req_id"] == 1
    [push_frame] = [json.loads(frame) for frame in sent["g2"].frames]
    assert push_frame[0]["type"] == "push"
    assert push_frame[0]["events"][0]["exec_type"] == "new"
    [events_frame] = [json.loads(frame) for frame in sent["s"].frames]
    assert [event["seq"] for event in events_frame] == list(range(1, history.last_seq + 1))


# ---------------------------------------------------------------------- outbox


async def test_outbox_batches_splits_and_overflows() -> None:
    sent = Sent()
    overflowed: list[bool] = []
    box = Outbox(sent, limit=100, always_array=False, on_overflow=lambda: overflowed.append(True))
    writer = asyncio.get_running_loop().create_task(box.run())
    box.put(b'{"a":1}')
    await box.drain()
    box.put(b"1")
    box.put(b"2")
    box.put_frame(b'{"hb":1}')
    box.put(b"3")
    await box.drain()
    assert sent.frames == [b'{"a":1}', b"[1,2]", b'{"hb":1}', b"3"]
    box.put(b"x" * 101)
    assert overflowed == [True] and box.overflowed
    box.close()
    await asyncio.wait_for(writer, 1)

    split = Sent()
    small = Outbox(split, limit=10**6, always_array=True, max_frame_bytes=10)
    task = asyncio.get_running_loop().create_task(small.run())
    small.put_many([b"1111", b"2222", b"3333"])
    await small.drain()
    assert split.frames == [b"[1111,2222]", b"[3333]"]
    small.close()
    await asyncio.wait_for(task, 1)


class SlowSend:
    """A send that blocks until the test lets it go (a peer that does not read yet)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, frame: bytes) -> None:
        self.entered.set()
        await self.gate.wait()
        self.frames.append(frame)


async def test_outbox_flush_sends_from_the_caller_in_order_with_the_writer() -> None:
    sent = Sent()
    box = Outbox(sent, limit=10**6, always_array=True)
    writer = asyncio.get_running_loop().create_task(box.run())
    box.put(b"1")
    box.put(b"2")
    await box.flush()  # sent before the writer task ever ran
    assert sent.frames == [b"[1,2]"]
    box.put(b"3")
    await box.drain()
    assert sent.frames == [b"[1,2]", b"[3]"]
    await box.flush()  # nothing queued: nothing sent
    assert sent.frames == [b"[1,2]", b"[3]"]
    box.close()
    await asyncio.wait_for(writer, 1)

    slow = SlowSend()
    box = Outbox(slow, limit=10**6, always_array=True)
    writer = asyncio.get_running_loop().create_task(box.run())
    box.put(b"a")
    flushing = asyncio.get_running_loop().create_task(box.flush())
    await slow.entered.wait()  # the flush is now waiting inside send
    box.put(b"b")
    await box.flush()  # the other flush is sending: this one returns at once
    assert slow.frames == []
    slow.gate.set()
    await flushing
    await box.drain()
    assert slow.frames == [b"[a]", b"[b]"]  # what was queued meanwhile follows, in order
    box.close()
    await asyncio.wait_for(writer, 1)


async def test_outbox_flush_that_fails_closes_quietly() -> None:
    async def broken(frame: bytes) -> None:
        raise ConnectionError("gone")

    box = Outbox(broken, limit=10**6, always_array=True)
    writer = asyncio.get_running_loop().create_task(box.run())
    box.put(b"1")
    await box.flush()
    assert box.closed
    box.put(b"2")  # dropped: the connection is gone
    await asyncio.wait_for(writer, 1)  # the writer ends by itself
    await box.drain()


class HeldCommit:
    """A committer whose releases wait until the test runs them (an fsync in flight)."""

    def __init__(self) -> None:
        self.held: list[Any] = []

    def commit(self, release: Any) -> None:
        self.held.append(release)

    def drain(self) -> None:
        while self.held:
            self.held.pop(0)()

    def close(self) -> None:
        self.drain()


async def test_groups_waiting_for_their_commit_hold_everything_back_in_order() -> None:
    sequencer = Sequencer(core())
    scheduled: list[Any] = []
    history = EventHistory(100)
    committer = HeldCommit()
    snapshots: list[int] = []

    def build_snapshot() -> bytes:
        snapshots.append(sequencer.core.last_seq)
        return b'{"type":"snapshot","seq":%d}' % sequencer.core.last_seq

    publisher = Publisher(
        sequencer, history, EngineStats(), build_snapshot, scheduled.append, committer=committer
    )
    sent = Sent()
    box = Outbox(sent, limit=10**6, always_array=True)
    writer = asyncio.get_running_loop().create_task(box.run())
    early = Subscriber("early", box)
    publisher.join_live(early)
    order = NewOrder(symbol="AAPL", side="buy", qty=1, price=185.0)

    publisher.publish(sequencer.submit("alice", order), None)
    scheduled.pop()()  # group 1 taken, waiting for its commit
    first_group_end = sequencer.core.last_seq
    late = Subscriber("late", Outbox(Sent(), limit=10**6, always_array=True))
    publisher.request_snapshot(late)
    publisher.publish(sequencer.submit("bob", order), None)
    scheduled.pop()()  # group 2 carries the snapshot, built after its own events
    assert history.last_seq == 0 and box.queued_bytes == 0  # nothing released yet
    assert snapshots == [sequencer.core.last_seq]

    committer.held.pop(0)()  # group 1 committed
    assert history.last_seq == first_group_end
    assert late.outbox.queued_bytes == 0 and late not in publisher.subscribers
    committer.held.pop(0)()  # group 2 committed: its events, then the snapshot, then live
    assert history.last_seq == sequencer.core.last_seq == late.released_seq
    assert late in publisher.subscribers and late.outbox.queued_bytes > 0
    await box.drain()
    box.close()
    await writer
    seqs = [event["seq"] for frame in sent.frames for event in json.loads(frame)]
    assert seqs == list(range(1, sequencer.core.last_seq + 1))


def test_release_now_flushes_at_once_and_the_scheduled_flush_adds_no_empty_group() -> None:
    sequencer = Sequencer(core())
    scheduled: list[Any] = []
    committer = HeldCommit()
    publisher = Publisher(
        sequencer, EventHistory(100), EngineStats(), lambda: b"{}", scheduled.append,
        committer=committer,
    )  # fmt: skip
    order = NewOrder(symbol="AAPL", side="buy", qty=1, price=185.0)
    publisher.publish(sequencer.submit("alice", order), None)
    publisher.release_now()
    assert len(committer.held) == 1
    scheduled.pop()()  # the end-of-iteration flush: nothing left to release
    assert len(committer.held) == 1
    publisher.release_now()  # nothing staged: nothing to do
    assert len(committer.held) == 1
