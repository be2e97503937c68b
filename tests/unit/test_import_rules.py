"""The layering rules of DESIGN.md, checked on the source (static) and at import (dynamic).

- exchange.protocol imports only msgspec and the standard library;
- exchange.core imports only exchange.protocol, msgspec and the standard library;
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


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(package: str) -> list[Path]:
    root = REPO_ROOT / package
    return sorted(root.rglob("*.py")) if root.exists() else []


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", python_files("exchange/protocol"), ids=str)
def test_protocol_imports_only_msgspec_and_stdlib(path: Path) -> None:
    for name in imported_modules(path):
        assert top(name) in STDLIB | {"msgspec"} or name.startswith("exchange.protocol"), name


@pytest.mark.parametrize("path", python_files("exchange/core"), ids=str)
def test_core_imports_only_protocol_msgspec_and_stdlib(path: Path) -> None:
    for name in imported_modules(path):
        allowed = top(name) in STDLIB | {"msgspec"} or name.startswith(
            ("exchange.core", "exchange.protocol")
        )
        assert allowed, f"{path}: imports {name}"


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
    for name in imported_modules(path):
        assert not name.startswith("exchange.core"), f"{path}: imports {name}"
        if name.startswith("exchange."):
            assert name.startswith(("exchange.protocol", "exchange.service")), name


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
