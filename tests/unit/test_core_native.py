"""The choice between the compiled core and its sources (exchange/native.py, outside the pure
core): a build older than its sources never runs, and EXCHANGE_PURE_CORE=1 always gets the
sources; the choice is made only when exchange.core is imported."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exchange import native
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
        shutil.copy(native.CORE_DIR / f"{name}.py", tmp_path / f"{name}.py")
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
    expected = native.select_build(environ={})
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


LAZY_PROBE = """
import json, sys
import exchange.protocol, exchange.service
from exchange import native
print(json.dumps({"core": "exchange.core" in sys.modules, "build": native.install().build}))
"""


def test_only_importing_the_core_chooses_a_build() -> None:
    # A gateway or a bot imports exchange.protocol: no stamp read, no hashing, no stale warning.
    result = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds(60),
        check=True,
    )
    assert json.loads(result.stdout) == {"core": False, "build": None}


STALE_PROBE = """
import json, sys, warnings
from pathlib import Path
from exchange import native
directory = Path(sys.argv[1]) / "fakecore"
sys.meta_path.insert(0, native.CoreImportHook("fakecore", directory))
sys.path.insert(0, sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fakecore
import fakecore.book
print(json.dumps({
    "build": fakecore.BUILD,
    "book": fakecore.book.__file__,
    "warnings": [(str(w.message), Path(w.filename).name) for w in caught],
}))
"""


def fake_core(root: Path, stamp: str) -> Path:
    """A package laid out like a built core whose extension modules are not loadable."""
    package = root / "fakecore"
    package.mkdir()
    (package / "__init__.py").write_text("BUILD: str\n")
    for name in native.COMPILED_MODULES:
        (package / f"{name}.py").write_text(f"NAME = {name!r}\n")
        (package / f"{name}{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_text("not ELF")
    (package / f"{native.RUNTIME}{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_text("")
    (package / native.STAMP.name).write_text(stamp + "\n")
    return package


@pytest.mark.parametrize("force_pure", [False, True])
def test_a_stale_or_unwanted_build_is_never_loaded(tmp_path: Path, force_pure: bool) -> None:
    # A current stamp with EXCHANGE_PURE_CORE=1, or a stale stamp: the sources run (loading the
    # fake extension modules would fail), and only the stale build warns, at the importing line.
    package = fake_core(tmp_path, "stale digest")
    if force_pure:
        (package / native.STAMP.name).write_text(native.source_digest(package) + "\n")
    script = tmp_path / "probe.py"
    script.write_text(STALE_PROBE)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "EXCHANGE_PURE_CORE": "1" if force_pure else "0"},
        capture_output=True,
        text=True,
        timeout=seconds(60),
        check=True,
    )
    seen = json.loads(result.stdout)
    assert seen["build"] == ("forced_pure" if force_pure else "stale")
    assert seen["book"] == str(package / "book.py")
    if force_pure:
        assert seen["warnings"] == []
    else:
        [(message, filename)] = seen["warnings"]
        assert "older than its sources" in message
        assert filename == "probe.py"
