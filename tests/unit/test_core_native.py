"""The choice between the compiled core and its sources (exchange/core/native.py): a build
older than its sources never runs, and EXCHANGE_PURE_CORE=1 always gets the sources."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exchange.core import native
from tests.support import REPO_ROOT, seconds

PROBE = """
import json, sys, warnings
warnings.simplefilter("error")  # a stale build must warn: make that visible as a failure
try:
    import exchange.core as core
    import exchange.core.book, exchange.core.exchange
except RuntimeWarning as warning:
    print(json.dumps({"warning": str(warning)}))
    sys.exit(0)
files = [sys.modules[f"exchange.core.{name}"].__file__ for name in ("book", "exchange")]
print(json.dumps({"build": core.BUILD, "compiled": core.COMPILED, "files": files}))
"""


def probe(cwd: Path = REPO_ROOT, **env: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=seconds(60),
        check=True,
    )
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("compiled", "stamp", "force_pure", "expected"),
    [
        (False, None, False, "none"),
        (False, "abc", True, "none"),
        (True, "abc", False, "native"),
        (True, "abc", True, "forced_pure"),
        (True, "old", False, "stale"),
        (True, None, False, "stale"),
    ],
)
def test_which_build_runs(
    compiled: bool, stamp: str | None, force_pure: bool, expected: native.Build
) -> None:
    assert native.classify(compiled, stamp, "abc", force_pure) == expected


def test_the_digest_follows_every_compiled_source(tmp_path: Path) -> None:
    for name in native.COMPILED_MODULES:
        shutil.copy(native.HERE / f"{name}.py", tmp_path / f"{name}.py")
    assert native.source_digest(tmp_path) == native.source_digest()
    for name in native.COMPILED_MODULES:
        before = native.source_digest(tmp_path)
        with (tmp_path / f"{name}.py").open("a") as source:
            source.write("# edited\n")
        assert native.source_digest(tmp_path) != before, name
    assert not native.has_extensions(tmp_path)


def test_pure_core_on_request() -> None:
    seen = probe(EXCHANGE_PURE_CORE="1")
    assert seen["build"] in ("forced_pure", "none")
    assert seen["compiled"] is False
    assert all(str(f).endswith(".py") for f in seen["files"])  # type: ignore[attr-defined]


def test_the_build_that_runs_is_the_one_reported() -> None:
    seen = probe(EXCHANGE_PURE_CORE="0")
    present = native.STAMP.exists() and native.has_runtime()
    stamp = native.STAMP.read_text().strip() if present else None
    expected = native.classify(native.has_extensions(), stamp, native.source_digest(), False)
    if expected == "stale":
        assert "older than its sources" in str(seen["warning"])
        return
    assert seen["build"] == expected
    assert seen["compiled"] is (expected == "native")
    for file in seen["files"]:  # type: ignore[attr-defined]
        assert str(file).endswith(".py") is (expected == "none"), file


def test_the_core_imports_the_same_build_from_any_directory(tmp_path: Path) -> None:
    # The compiled modules' runtime library lives in the package, not in the working directory.
    assert probe(tmp_path, EXCHANGE_PURE_CORE="0") == probe(EXCHANGE_PURE_CORE="0")


def test_a_build_without_its_runtime_library_is_not_native(tmp_path: Path) -> None:
    assert not native.has_runtime(tmp_path)
    (tmp_path / f"{native.RUNTIME}{importlib.machinery.EXTENSION_SUFFIXES[0]}").touch()
    assert native.has_runtime(tmp_path)
