"""The layering rules of DESIGN.md, checked on the source (static) and at import (dynamic).

- exchange.protocol imports only msgspec and the standard library;
- exchange.core imports only exchange.protocol, msgspec, sortedcontainers and an allow-list of
  pure standard-library modules (``CORE_STDLIB``): no clock, OS, randomness, logging, I/O or
  import machinery (``CORE_FORBIDDEN`` names the usual suspects; anything else off the
  allow-list is refused too);
- gateway, marketdata, exporter, bots, monitor never import exchange.core;
- only process shells import websockets, uvloop, structlog (never core or protocol);
- strategies (bots/strategies, examples) import only the bots' public API.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

STDLIB = set(sys.stdlib_module_names)

CORE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "bisect",
        "collections",
        "dataclasses",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "hashlib",  # state_hash: a digest of bytes in memory
        "heapq",
        "itertools",
        "math",
        "numbers",
        "operator",
        "re",
        "typing",
    }
)
"""The standard-library modules the core may import: computation on values in memory only."""

CORE_THIRD_PARTY = frozenset({"msgspec", "sortedcontainers"})

CORE_FORBIDDEN = {
    "time": "a clock (the time comes in with the command)",
    "datetime": "a clock (the time comes in with the command)",
    "os": "the OS (files, environment)",
    "sys": "the interpreter and its import state",
    "random": "randomness (ids come from the core's counters)",
    "secrets": "randomness (ids come from the core's counters)",
    "uuid": "randomness and the clock (ids come from the core's counters)",
    "logging": "logging (the engine logs, the core returns events)",
    "structlog": "logging (the engine logs, the core returns events)",
    "importlib": "import machinery (build selection lives in exchange/native.py)",
    "__import__": "import machinery (build selection lives in exchange/native.py)",
    "pathlib": "files",
    "io": "I/O",
    "socket": "I/O",
    "asyncio": "an event loop",
    "threading": "threads",
    "subprocess": "processes",
}
"""Modules the core must never import, with what each would bring in."""


def import_lines(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in ``path``.

    Relative imports are resolved against ``package`` (by default the file's own, from its
    place in the repository); an ``__import__(...)`` call counts as importing ``__import__``,
    so that a rule can refuse it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(REPO_ROOT).parent.parts)
    parts = package.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
                continue
            base = parts[: len(parts) - (node.level - 1)]
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found.extend((node.lineno, ".".join([*base, name])) for name in names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            found.append((node.lineno, "__import__"))
    return sorted(found)


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path``."""
    return {name for _, name in import_lines(path)}


def python_files(package: str) -> list[Path]:
    root = REPO_ROOT / package
    return sorted(root.rglob("*.py")) if root.exists() else []


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", python_files("exchange/protocol"), ids=str)
def test_protocol_imports_only_msgspec_and_stdlib(path: Path) -> None:
    for name in imported_modules(path):
        assert top(name) in STDLIB | {"msgspec"} or name.startswith("exchange.protocol"), name


def core_import_problem(name: str) -> str | None:
    """Why exchange.core may not import ``name``, or None when it may."""
    if name.startswith(("exchange.core.", "exchange.protocol.")) or name in (
        "exchange.core",
        "exchange.protocol",
    ):
        return None
    if top(name) in CORE_FORBIDDEN:
        return f"forbidden in the core: {CORE_FORBIDDEN[top(name)]}"
    if top(name) in CORE_STDLIB | CORE_THIRD_PARTY:
        return None
    if top(name) in STDLIB:
        return "not on the core's allow-list of pure standard-library modules (CORE_STDLIB)"
    return "only exchange.protocol, msgspec and sortedcontainers are allowed beside the stdlib"


@pytest.mark.parametrize("path", python_files("exchange/core"), ids=str)
def test_core_imports_only_protocol_msgspec_and_pure_stdlib(path: Path) -> None:
    problems = [
        f"{path.relative_to(REPO_ROOT)}:{line}: imports {name}: {problem}"
        for line, name in import_lines(path)
        if (problem := core_import_problem(name)) is not None
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("collections.abc", True),
        ("hashlib", True),
        ("msgspec.msgpack", True),
        ("exchange.protocol.messages", True),
        ("exchange.core.book", True),
        ("exchange.native", False),
        ("exchange.engine.journal", False),
        ("time", False),
        ("datetime", False),
        ("os.path", False),
        ("importlib.util", False),
        ("logging", False),
        ("tempfile", False),
        ("__import__", False),
        ("websockets", False),
    ],
)
def test_the_core_import_rule(name: str, allowed: bool) -> None:
    assert (core_import_problem(name) is None) is allowed, name


def test_a_forbidden_import_in_a_core_module_is_named(tmp_path: Path) -> None:
    module = tmp_path / "stage.py"
    module.write_text(
        "from __future__ import annotations\n\n"
        "import time\n"
        "from . import book\n"
        "from .. import native\n"
        "from collections import deque\n"
        "clock = __import__('time')\n"
    )
    problems = [
        (line, name)
        for line, name in import_lines(module, "exchange.core")
        if core_import_problem(name) is not None
    ]
    assert problems == [(3, "time"), (5, "exchange.native"), (7, "__import__")]


@pytest.mark.parametrize(
    "path",
    [
        p
        for pkg in ("gateway", "marketdata", "exporter", "bots", "monitor")
        for p in python_files(pkg)
    ],
    ids=str,
)
def test_process_packages_never_import_the_core(path: Path) -> None:
    # The one exception: the arena (bots/arena, PROTOCOL §8) hosts the venue in its own
    # process, on simulated time, so it must run the matching core itself; the strategies it
    # runs still see only the bots' API (test below), and nothing else in bots may import it.
    hosts_the_venue = path.is_relative_to(ARENA)
    for name in imported_modules(path):
        if hosts_the_venue and (name == "exchange.core" or name.startswith("exchange.core.")):
            continue
        assert not name.startswith("exchange.core"), f"{path}: imports {name}"
        if name.startswith("exchange."):
            assert name.startswith(("exchange.protocol", "exchange.service")), name


ARENA = REPO_ROOT / "bots" / "arena"
"""The only sub-package of a process package allowed to import exchange.core."""


def test_only_the_arena_imports_the_core_from_bots() -> None:
    importers = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in python_files("bots")
        if any(name.startswith("exchange.core") for name in imported_modules(path))
    }
    assert importers and all(p.startswith("bots/arena/") for p in importers), importers


def test_strategies_import_only_the_public_bot_api() -> None:
    strategy_files = python_files("bots/strategies") + python_files("examples")
    for path in strategy_files:
        for name in imported_modules(path):
            if top(name) in STDLIB:
                continue
            assert name == "bots" or name.startswith(("bots.api", "bots.strategies")), (
                f"{path}: imports {name}"
            )


def test_importing_the_core_loads_no_io_libraries() -> None:
    code = (
        "import sys, exchange.core, exchange.protocol;"
        "bad = {'asyncio', 'websockets', 'structlog', 'uvloop', 'socket'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "[]"


def test_importing_the_core_loads_nothing_forbidden() -> None:
    # The static rule above sees the core's own imports; this sees what they load in turn
    # (beyond what exchange.protocol and msgspec already loaded).
    code = (
        "import sys, exchange.protocol;"
        "before = set(sys.modules);"
        "import exchange.core;"
        f"print(sorted((set(sys.modules) - before) & {set(CORE_FORBIDDEN)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "[]"
