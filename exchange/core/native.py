"""Which build of the core runs: the mypyc-compiled modules, or their Python sources.

``scripts/build_native`` compiles ``COMPILED_MODULES`` in place (extension modules beside the
sources, which Python's import system prefers) and then writes ``native.stamp``: a digest of
the sources it compiled. ``exchange/core/__init__.py`` calls ``prefer_sources_if_needed()``
before it imports anything else, and the sources win when:

- ``EXCHANGE_PURE_CORE=1`` asks for them (to test or profile the pure-Python core), or
- the compiled modules are stale: the sources changed since the build (an edit, a checkout),
  the build is laid out as an older script made it, or its shared runtime library is missing.
  A stale build is never run; a ``RuntimeWarning`` says so and how to rebuild.

This module imports only the standard library and nothing else of the package, so the build
script can run it as a plain script (``python exchange/core/native.py stamp``).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal

COMPILED_MODULES = ("instruments", "book", "accounts", "margin_watch", "exchange")
"""The core's hot modules that ``scripts/build_native`` compiles (the rest stay Python)."""

RUNTIME = "_native__mypyc"
"""The shared library the compiled modules load (``scripts/native_setup.py`` names its group)."""

BUILD_FORMAT = b"group-in-package"
"""Part of the digest: a build laid out differently (an older script's) counts as stale."""

HERE = Path(__file__).resolve().parent
STAMP = HERE / "native.stamp"
PURE_ENV = "EXCHANGE_PURE_CORE"

Build = Literal["none", "native", "forced_pure", "stale"]


def source_digest(directory: Path = HERE) -> str:
    """A digest of the compiled modules' sources (what a native build must have been made of)."""
    digest = hashlib.sha256(BUILD_FORMAT)
    for name in COMPILED_MODULES:
        digest.update(name.encode())
        digest.update((directory / f"{name}.py").read_bytes())
    return digest.hexdigest()


def has_extensions(directory: Path = HERE) -> bool:
    """Whether any compiled module lies beside its source."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(
        (directory / f"{name}{suffix}").exists() for name in COMPILED_MODULES for suffix in suffixes
    )


def has_runtime(directory: Path = HERE) -> bool:
    """Whether the compiled modules' shared runtime library lies in the package."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any((directory / f"{RUNTIME}{suffix}").exists() for suffix in suffixes)


def classify(compiled: bool, stamp: str | None, digest: str, force_pure: bool) -> Build:
    """Which build should run, from what lies on disk and what was asked for."""
    if not compiled:
        return "none"
    if force_pure:
        return "forced_pure"
    if stamp != digest:
        return "stale"
    return "native"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extension modules."""

    def __init__(self, package: str, directory: Path) -> None:
        self.names = {f"{package}.{name}": directory / f"{name}.py" for name in COMPILED_MODULES}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.names.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def prefer_sources_if_needed(package: str) -> Build:
    """Call from the package's ``__init__`` before importing a compiled module; returns the
    build in use. Installs the source finder unless a current native build may run."""
    stamp = STAMP.read_text().strip() if STAMP.exists() and has_runtime() else None
    build = classify(has_extensions(), stamp, source_digest(), os.environ.get(PURE_ENV) == "1")
    if build in ("forced_pure", "stale"):
        sys.meta_path.insert(0, _SourceFinder(package, HERE))
    if build == "stale":
        warnings.warn(
            "exchange.core: the compiled core is older than its sources, so the pure-Python "
            "core runs; ./scripts/build_native rebuilds it (--clean removes it)",
            RuntimeWarning,
            stacklevel=2,
        )
    return build


if __name__ == "__main__":
    if sys.argv[1:] == ["stamp"]:
        STAMP.write_text(source_digest() + "\n")
    elif sys.argv[1:] == ["digest"]:
        print(source_digest())
    elif sys.argv[1:] == ["modules"]:
        print(" ".join(COMPILED_MODULES))
    else:
        sys.exit("usage: python exchange/core/native.py stamp|digest|modules")
