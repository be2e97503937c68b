"""Scenario files (``python -m exchange --scenario FILE``, PROTOCOL §3.3): operator commands
that the engine plays on its own clock, ``at_s`` seconds after the scenario starts.

```toml
[[scenario]]
at_s = 30
news = { headline = "ACME beats estimates", symbols = ["AAPL"], sentiment = 0.8 }
shock = 0.05                    # moves the named symbols' reference price by +5%

[[scenario]]
at_s = 30                       # halt AAPL for 20 s, then reopen it through a 10 s auction
status = { symbol = "AAPL", status = "halted", until_s = 20, auction_s = 10 }

[[scenario]]
at_s = 600
start_round = { name = "afternoon", cash = 100000 }
```

Each entry holds ``at_s`` and exactly one action: ``news`` (a ``publish_news``; ``shock`` may go
with it), ``status`` (a ``set_status``: ``symbol`` or ``*``, ``status``, optional ``auction_s``,
and instead of the request's absolute ``until`` an ``until_s``, seconds after the entry fires,
only with ``halted``; the player turns it into ``until`` from its clock as it submits) or
``start_round``. Entries run in ``at_s`` order (ties: file order). ``load`` checks
everything before the engine starts: a bad file is one ``ScenarioError`` naming the file, the
entry and the field.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from exchange.protocol.messages import OperatorCommand, PublishNews, SetStatus, StartRound


class ScenarioError(ValueError):
    """The scenario file is missing, not TOML, or an entry is wrong (the text says where)."""


class ScenarioEntry(msgspec.Struct, frozen=True):
    at_s: float
    command: OperatorCommand
    until_s: float | None = None
    """A ``status`` entry's ``until_s``: the player sets the ``set_status``'s ``until`` to the
    time it submits it plus this many seconds."""


class Scenario(msgspec.Struct, frozen=True):
    path: str
    digest: str
    """BLAKE2b of the file's bytes: a restarted engine resumes only the same scenario."""
    entries: list[ScenarioEntry]


_ACTIONS = ("news", "status", "start_round")
_STATUS_KEYS = frozenset({"symbol", "status", "until_s", "auction_s"})
_KEYS = frozenset({"at_s", "shock", *_ACTIONS})


def load(path: str | Path) -> Scenario:
    """The scenario in ``path``, entries sorted by ``at_s``. Raises ScenarioError."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {file}: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(data.decode("utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {file} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"scenario"})
    if unknown:
        raise ScenarioError(f"scenario {file}: unknown table {unknown[0]!r} (only [[scenario]])")
    items = raw.get("scenario", [])
    if not isinstance(items, list):
        raise ScenarioError(f"scenario {file}: 'scenario' must be an array of tables")
    entries = [_entry(file, number, item) for number, item in enumerate(items, start=1)]
    entries.sort(key=lambda entry: entry.at_s)  # stable: ties keep file order
    return Scenario(str(file), hashlib.blake2b(data, digest_size=16).hexdigest(), entries)


def _entry(file: Path, number: int, item: Any) -> ScenarioEntry:
    where = f"scenario {file}, entry {number}"
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: not a table")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key {unknown[0]!r} (expected at_s, news, shock, status, start_round)"
        )
    at_s = item.get("at_s")
    if not isinstance(at_s, int | float) or isinstance(at_s, bool) or not 0 <= at_s < 1e9:
        raise ScenarioError(f"{where}: at_s must be a number of seconds >= 0")
    actions = [name for name in _ACTIONS if name in item]
    if len(actions) != 1:
        raise ScenarioError(f"{where}: needs exactly one of news, status, start_round")
    action = actions[0]
    fields = item[action]
    if not isinstance(fields, dict):
        raise ScenarioError(f"{where}: {action} must be a table")
    if action != "news" and "shock" in item:
        raise ScenarioError(f"{where}: shock goes with news")
    if action == "status":
        return _status_entry(where, float(at_s), fields)
    command: OperatorCommand
    try:
        if action == "news":
            if "shock" in item:
                fields = {**fields, "shock": item["shock"]}
            command = msgspec.convert(fields, PublishNews)
        else:
            command = msgspec.convert(fields, StartRound)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{where}: {action}: {exc}") from None
    return ScenarioEntry(float(at_s), command)


def _status_entry(where: str, at_s: float, fields: dict[str, Any]) -> ScenarioEntry:
    unknown = sorted(set(fields) - _STATUS_KEYS)
    if unknown:
        raise ScenarioError(
            f"{where}: status: unknown key {unknown[0]!r} "
            "(expected symbol, status, until_s, auction_s)"
        )
    until_s = fields.get("until_s")
    request = {k: v for k, v in fields.items() if k != "until_s"}
    try:
        command = msgspec.convert(request, SetStatus)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{where}: status: {exc}") from None
    if until_s is not None:
        if not isinstance(until_s, int | float) or isinstance(until_s, bool):
            raise ScenarioError(f"{where}: status: until_s must be a number of seconds")
        if not 0 < until_s < 1e9:
            raise ScenarioError(f"{where}: status: until_s must be > 0 seconds")
        if command.status != "halted":
            raise ScenarioError(f"{where}: status: until_s goes with status halted")
    if command.auction_s is not None and command.status == "open":
        raise ScenarioError(f"{where}: status: auction_s goes with halted or auction")
    return ScenarioEntry(at_s, command, None if until_s is None else float(until_s))
