"""The committers behind ``--fsync``. Pipelined group commit (``always``): nothing is released
before the fsync that covers it returned, releases keep their order, the loop is never
blocked by the disk, a failed fsync releases nothing more. Periodic sync (``batch``):
released at once after the write, fsynced in the background at most every interval."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from exchange.core import Exchange
from exchange.core.config import core_config
from exchange.engine.group_commit import ImmediateCommit, PeriodicSync, PipelinedCommit
from exchange.engine.journal import JournalReader, JournalWriter
from exchange.engine.sequencer import Sequencer
from exchange.protocol.config import load_config
from exchange.protocol.messages import NewOrder
from tests.support import seconds

TIMEOUT = seconds(5)


class GatedJournal:
    """A sequencer stand-in whose fsyncs block until the test opens the gate."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.dirty = False
        self.gates: list[threading.Event] = []
        self.fail = False

    def append(self) -> None:
        self.dirty = True

    def write(self) -> None:
        self.log.append("write")

    def commit(self) -> None:
        self.log.append("commit")
        self.dirty = False

    def sync_job(self) -> Callable[[], None] | None:
        if not self.dirty:
            return None
        self.dirty = False
        gate = threading.Event()
        self.gates.append(gate)

        def job() -> None:
            assert gate.wait(TIMEOUT)
            self.log.append("fsync")
            if self.fail:
                raise OSError(5, "Input/output error")

        return job


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0)


async def test_groups_wait_for_the_fsync_that_covers_them_and_keep_their_order() -> None:
    journal = GatedJournal()
    committer = PipelinedCommit(journal, on_failure=pytest.fail)
    released: list[int] = []
    journal.append()
    committer.commit(lambda: released.append(1))
    assert committer.in_flight and released == []
    # the loop goes on: two more groups are written while the first fsync runs
    journal.append()
    committer.commit(lambda: released.append(2))
    journal.append()
    committer.commit(lambda: released.append(3))
    await asyncio.sleep(0.01)  # give a (wrong) early release every chance to happen
    assert released == [] and len(journal.gates) == 1
    journal.gates[0].set()
    await until(lambda: released == [1])
    assert committer.in_flight and len(journal.gates) == 2  # one fsync covers groups 2 and 3
    journal.gates[1].set()
    await until(lambda: released == [1, 2, 3])
    assert not committer.in_flight and committer.syncs == 2
    committer.close()


async def test_a_group_with_nothing_to_sync_still_waits_behind_earlier_ones() -> None:
    journal = GatedJournal()
    committer = PipelinedCommit(journal, on_failure=pytest.fail)
    released: list[str] = []
    journal.append()
    committer.commit(lambda: released.append("order"))
    committer.commit(lambda: released.append("query reply"))  # wrote nothing new
    await asyncio.sleep(0.01)
    assert released == []
    journal.gates[0].set()
    await until(lambda: released == ["order", "query reply"])
    committer.close()
    # idle, a group with nothing to sync goes at once
    committer2 = PipelinedCommit(GatedJournal(), on_failure=pytest.fail)
    committer2.commit(lambda: released.append("alone"))
    assert released[-1] == "alone"
    committer2.close()


async def test_drain_waits_for_the_fsync_in_flight_and_releases_everything() -> None:
    journal = GatedJournal()
    committer = PipelinedCommit(journal, on_failure=pytest.fail)
    released: list[int] = []
    journal.append()
    committer.commit(lambda: released.append(1))
    journal.append()
    committer.commit(lambda: released.append(2))
    threading.Timer(0.05, journal.gates[0].set).start()
    committer.drain()
    assert released == [1, 2]
    assert journal.log == ["write", "write", "fsync", "commit"]
    await asyncio.sleep(0.01)  # the late completion callback must not release twice
    assert released == [1, 2]
    committer.close()
    committer.commit(lambda: released.append(3))  # after close: synchronous
    assert released == [1, 2, 3]


async def test_a_failed_fsync_releases_nothing_more() -> None:
    journal = GatedJournal()
    journal.fail = True
    failures: list[BaseException] = []
    committer = PipelinedCommit(journal, on_failure=failures.append)
    released: list[int] = []
    journal.append()
    committer.commit(lambda: released.append(1))
    journal.append()
    committer.commit(lambda: released.append(2))
    journal.gates[0].set()
    await until(lambda: bool(failures))
    assert isinstance(failures[0], OSError) and committer.failed
    journal.append()
    committer.commit(lambda: released.append(3))
    committer.drain()
    await asyncio.sleep(0.01)
    assert released == []
    committer.close()


def test_immediate_commit_commits_then_releases() -> None:
    journal = GatedJournal()
    released: list[str] = []
    ImmediateCommit(journal).commit(lambda: released.append(journal.log[-1]))
    assert released == ["commit"]


async def test_with_a_real_journal_every_released_command_is_on_disk(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, 0)
    sequencer = Sequencer(Exchange(core_config(load_config(None))), journal=writer)
    committer = PipelinedCommit(sequencer, on_failure=pytest.fail)
    released: list[int] = []
    for n in range(200):
        sequencer.submit("alice", NewOrder(symbol="AAPL", side="buy", qty=1, price=180.0))
        committer.commit(lambda n=n: released.append(n))
        if n % 7 == 0:
            await asyncio.sleep(0)  # let some fsyncs complete in between
    await until(lambda: len(released) == 200)
    assert released == list(range(200))
    assert committer.syncs < 200  # groups shared fsyncs
    committer.close()
    writer.close()
    assert [record.index for record in JournalReader(tmp_path).records()] == list(range(200))


# ---------------------------------------------------------------------- periodic (batch)


async def test_batch_releases_after_the_write_and_fsyncs_in_the_background() -> None:
    journal = GatedJournal()
    committer = PeriodicSync(journal, on_failure=pytest.fail, interval=0.05)
    released: list[int] = []
    journal.append()
    committer.commit(lambda: released.append(journal.log.count("write")))
    assert released == [1]  # written, then released: no waiting for the disk
    assert committer.in_flight and committer.syncs == 1  # the first fsync starts at once
    for n in range(2, 50):
        journal.append()
        committer.commit(lambda n=n: released.append(n))
    assert released == [1, *range(2, 50)] and committer.syncs == 1
    journal.gates[0].set()
    await until(lambda: committer.syncs == 2)  # what came meanwhile: one more fsync
    journal.gates[1].set()
    await until(lambda: not committer.in_flight)
    assert committer.syncs == 2 and journal.log.count("fsync") == 2
    committer.close()


async def test_batch_fsyncs_at_most_every_interval() -> None:
    journal = GatedJournal()
    now = [100.0]
    committer = PeriodicSync(journal, pytest.fail, interval=0.05, clock=lambda: now[0])
    journal.append()
    committer.commit(lambda: None)
    journal.gates[0].set()
    await until(lambda: not committer.in_flight)
    journal.append()
    committer.commit(lambda: None)  # 0 s after the last fsync started: wait for the timer
    assert committer.syncs == 1 and not committer.in_flight
    now[0] += 0.05
    await until(lambda: committer.syncs == 2)
    journal.gates[1].set()
    committer.close()
    assert journal.log[-1] == "commit"  # close makes everything durable synchronously


async def test_batch_stops_on_a_failed_fsync() -> None:
    journal = GatedJournal()
    journal.fail = True
    failures: list[BaseException] = []
    committer = PeriodicSync(journal, failures.append, interval=0.001)
    released: list[int] = []
    journal.append()
    committer.commit(lambda: released.append(1))
    journal.gates[0].set()
    await until(lambda: bool(failures))
    journal.append()
    committer.commit(lambda: released.append(2))
    assert released == [1] and committer.failed
    committer.close()
