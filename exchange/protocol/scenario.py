"""Scenario files (``python -m exchange --scenario FILE``, PROTOCOL §3.3): operator commands
that the engine plays on its own clock, ``at_s`` seconds after the scenario starts.

```toml
[[scenario]]
at_s = 30
news = { headline = "ACME beats estimates", symbols = ["AAPL"], sentiment = 0.8 }
shock = 0.05                    # moves the named symbols' reference price by +5%

[[scenario]]
at_s = 600
start_round = { name = "afternoon", cash = 100000 }
```

Each entry holds ``at_s`` and exactly one action: ``news`` (a ``publish_news``; ``shock`` may go
with it) or ``start_round``. Entries run in ``at_s`` order (ties: file order). ``load`` checks
everything before the engine starts: a bad file is one ``ScenarioError`` naming the file, the
entry and the field.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from exchange.protocol.messages import OperatorCommand, PublishNews, StartRound


class ScenarioError(ValueError):
    """The scenario file is missing, not TOML, or an entry is wrong (the text says where)."""


class ScenarioEntry(msgspec.Struct, frozen=True):
    at_s: float
    command: OperatorCommand


class Scenario(msgspec.Struct, frozen=True):
    path: str
    digest: str
    """BLAKE2b of the file's bytes: a restarted engine resumes only the same scenario."""
    entries: list[ScenarioEntry]


_ACTIONS = ("news", "start_round")
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
            f"{where}: unknown key {unknown[0]!r} (expected at_s, news, shock, start_round)"
        )
    at_s = item.get("at_s")
    if not isinstance(at_s, int | float) or isinstance(at_s, bool) or not 0 <= at_s < 1e9:
        raise ScenarioError(f"{where}: at_s must be a number of seconds >= 0")
    actions = [name for name in _ACTIONS if name in item]
    if len(actions) != 1:
        raise ScenarioError(f"{where}: needs exactly one of news, start_round")
    action = actions[0]
    fields = item[action]
    if not isinstance(fields, dict):
        raise ScenarioError(f"{where}: {action} must be a table")
    command: OperatorCommand
    try:
        if action == "news":
            if "shock" in item:
                fields = {**fields, "shock": item["shock"]}
            command = msgspec.convert(fields, PublishNews)
        else:
            if "shock" in item:
                raise ScenarioError(f"{where}: shock goes with news")
            command = msgspec.convert(fields, StartRound)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{where}: {action}: {exc}") from None
    return ScenarioEntry(float(at_s), command)
