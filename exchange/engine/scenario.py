"""Playing a scenario file (``--scenario FILE``) on the engine's clock.

Entry ``k`` is submitted, like an operator's command (journaled, published to every gateway
and the event port), ``at_s`` seconds after the scenario started; a ``status`` entry's
``until_s`` becomes the ``set_status``'s absolute ``until``: the player's clock when it submits
the entry plus ``until_s`` (an entry that runs late, after a restart, halts for its full
``until_s`` from then). With a data directory the
player remembers its progress in ``scenario.json`` there (the file's digest, when it
started, how many entries it has submitted), written after each entry: an engine restarted
with the same scenario resumes it on the original timeline (entries that fell due while it
was down run at once, in order), and one started with another scenario begins that one
afresh. An entry whose submission was not yet recorded when the engine died runs again after
the restart (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from exchange.protocol.messages import OperatorCommand, SetStatus
from exchange.protocol.scenario import Scenario, ScenarioEntry

log = structlog.get_logger("engine.scenario")

STATE_FILE = "scenario.json"


class ScenarioPlayer:
    """Submits a scenario's entries when they fall due (``run`` until all are done)."""

    def __init__(
        self,
        scenario: Scenario,
        submit: Callable[[OperatorCommand], None],
        data_dir: Path | None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.scenario = scenario
        self._submit = submit
        self._state = data_dir / STATE_FILE if data_dir is not None else None
        self._clock = clock
        self.started_ns, self.played = self._resume()

    def _resume(self) -> tuple[int, int]:
        """(start time, entries already played) of this scenario, from the state file."""
        if self._state is not None:
            try:
                state = json.loads(self._state.read_text())
                if state.get("digest") == self.scenario.digest:
                    return int(state["started_ns"]), int(state["played"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return self._clock(), 0

    def _save(self) -> None:
        if self._state is None:
            return
        state = {
            "scenario": self.scenario.path,
            "digest": self.scenario.digest,
            "started_ns": self.started_ns,
            "played": self.played,
        }
        temporary = self._state.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self._state)

    def next_due(self) -> int | None:
        """When the next entry falls due (ns), None when all have been played."""
        entries = self.scenario.entries
        if self.played >= len(entries):
            return None
        return self.started_ns + round(entries[self.played].at_s * 1e9)

    def play_due(self) -> int:
        """Submit every entry due now, in order; returns how many."""
        count = 0
        now = self._clock()
        while (due := self.next_due()) is not None and due <= now:
            entry = self.scenario.entries[self.played]
            log.info("scenario_entry", at_s=entry.at_s, command=type(entry.command).__name__)
            self._submit(_command(entry, now))
            self.played += 1
            self._save()
            count += 1
        return count

    async def run(self) -> None:
        """Play the scenario to its end on the clock (cancel to stop early)."""
        self._save()
        if self.played:
            log.info("scenario_resumed", played=self.played, of=len(self.scenario.entries))
        while (due := self.next_due()) is not None:
            wait = (due - self._clock()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            self.play_due()
        log.info("scenario_done", entries=len(self.scenario.entries))


def _command(entry: ScenarioEntry, now: int) -> OperatorCommand:
    """The command ``entry`` submits at ``now`` (ns): its ``until_s`` made absolute."""
    command = entry.command
    if entry.until_s is not None and isinstance(command, SetStatus):
        return msgspec.structs.replace(command, until=now + round(entry.until_s * 1e9))
    return command
