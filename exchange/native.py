"""Which build of the core runs: the mypyc-compiled modules, or their Python sources.

Build tooling, kept out of ``exchange.core`` so that the core stays pure (it reads no file, no
environment variable and touches no import machinery).

``scripts/build_native`` compiles ``COMPILED_MODULES`` in place (extension modules beside the
sources in ``exchange/core/``, which Python's import system prefers) and then writes
``exchange/core/native.stamp``: a digest of the sources it compiled.

``exchange/__init__.py`` calls ``install()``, which puts a ``CoreImportHook`` first on
``sys.meta_path``. It does nothing until ``exchange.core`` itself is imported (a gateway or a bot,
which import only ``exchange.protocol``, never pays for it); then, once per process, it chooses
the build (``select_build``) and serves the core package with ``exchange.core.BUILD`` already
set. The sources win when:

- ``EXCHANGE_PURE_CORE=1`` asks for them (to test or profile the pure-Python core), or
- the compiled modules are stale: the sources changed since the build (an edit, a checkout),
  the build is laid out as an older script made it, or its shared runtime library is missing.
  A stale build is never run; a ``RuntimeWarning`` says so and how to rebuild.

This module imports only the standard library and nothing else of the package, so the build
script runs it as a plain script: ``python exchange/native.py stamp|digest|modules``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal

COMPILED_MODULES = (
    "instruments",
    "book",
    "accounts",
    "margin_watch",
    "done",
    "reports",
    "venue",
    "orders",
    "trigger_book",
    "clock",
    "matching",
    "risk",
    "liquidation",
    "triggers",
    "intake",
    "operators",
    "market_control",
    "status",
    "publication",
    "exchange",
)
"""The core's hot modules that ``scripts/build_native`` compiles (the rest stay Python)."""

RUNTIME = "_native__mypyc"
"""The shared library the compiled modules load (``scripts/native_setup.py`` names its group)."""

BUILD_FORMAT = b"group-in-package"
"""Part of the digest: a build laid out differently (an older script's) counts as stale."""

CORE_PACKAGE = "exchange.core"
CORE_DIR = Path(__file__).resolve().parent / "core"
STAMP = CORE_DIR / "native.stamp"
PURE_ENV = "EXCHANGE_PURE_CORE"

Build = Literal["none", "native", "forced_pure", "stale"]
"""``native`` (the compiled modules run), ``none`` (there are none), ``forced_pure``
(``EXCHANGE_PURE_CORE=1``) or ``stale`` (compiled before the sources changed; not used)."""


def source_digest(directory: Path = CORE_DIR) -> str:
    """A digest of the compiled modules' sources (what a native build must have been made of)."""
    import hashlib  # here, not above: processes that never import the core never load it

    digest = hashlib.sha256(BUILD_FORMAT)
    for name in COMPILED_MODULES:
        digest.update(name.encode())
        digest.update((directory / f"{name}.py").read_bytes())
    return digest.hexdigest()


def has_extensions(directory: Path = CORE_DIR) -> bool:
    """Whether any compiled module lies beside its source."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any(
        (directory / f"{name}{suffix}").exists() for name in COMPILED_MODULES for suffix in suffixes
    )


def has_runtime(directory: Path = CORE_DIR) -> bool:
    """Whether the compiled modules' shared runtime library lies in the package."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return any((directory / f"{RUNTIME}{suffix}").exists() for suffix in suffixes)


def classify(compiled: bool, stamp: str | None, digest: str, force_pure: bool) -> Build:
    """Which build should run, from what lies on disk and what was asked for (pure)."""
    if not compiled:
        return "none"
    if force_pure:
        return "forced_pure"
    if stamp != digest:
        return "stale"
    return "native"


def select_build(directory: Path = CORE_DIR, environ: Mapping[str, str] = os.environ) -> Build:
    """The build that may run now, from the files in ``directory`` and ``EXCHANGE_PURE_CORE``.

    Reads the stamp and hashes the sources; changes nothing and never warns."""
    stamp_file = directory / STAMP.name
    present = stamp_file.exists() and has_runtime(directory)
    stamp = stamp_file.read_text().strip() if present else None
    return classify(
        has_extensions(directory), stamp, source_digest(directory), environ.get(PURE_ENV) == "1"
    )


class _CorePackageLoader(importlib.machinery.SourceFileLoader):
    """Loads ``exchange/core/__init__.py`` with ``BUILD`` set before its body runs."""

    def __init__(self, fullname: str, path: str, build: Build) -> None:
        super().__init__(fullname, path)
        self.build = build

    def exec_module(self, module: ModuleType) -> None:
        module.BUILD = self.build  # type: ignore[attr-defined]
        super().exec_module(module)


class CoreImportHook:
    """Chooses the core's build when ``exchange.core`` is first imported, and then serves the
    compiled modules' ``.py`` sources ahead of their extension modules when the build is
    ``forced_pure`` or ``stale``. Every other import passes through untouched.

    A meta path finder by protocol (``find_spec``): subclassing ``importlib.abc.MetaPathFinder``
    would load ``importlib.resources`` (and tempfile, shutil...) into every process."""

    def __init__(self, package: str = CORE_PACKAGE, directory: Path = CORE_DIR) -> None:
        self.package = package
        self.directory = directory
        self.sources = {f"{package}.{name}": directory / f"{name}.py" for name in COMPILED_MODULES}
        self.build: Build | None = None
        """None until the core package is first looked up."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.package:
            return self._package_spec()
        if self.build in ("forced_pure", "stale"):
            source = self.sources.get(fullname)
            if source is not None:
                return importlib.util.spec_from_file_location(fullname, source)
        return None

    def _package_spec(self) -> importlib.machinery.ModuleSpec | None:
        if self.build is None:
            self.build = select_build(self.directory)
            if self.build == "stale":
                # stacklevel skips this frame, find_spec and importlib's own frames: the warning
                # names the line that imported the core.
                warnings.warn(
                    "exchange.core: the compiled core is older than its sources, so the pure-"
                    "Python core runs; ./scripts/build_native rebuilds it (--clean removes it)",
                    RuntimeWarning,
                    stacklevel=3,
                )
        init = self.directory / "__init__.py"
        loader = _CorePackageLoader(self.package, str(init), self.build)
        return importlib.util.spec_from_file_location(
            self.package, init, loader=loader, submodule_search_locations=[str(self.directory)]
        )


def install() -> CoreImportHook:
    """Put the hook first on ``sys.meta_path`` (once per process; later calls return it).

    Call before ``exchange.core`` is imported: ``exchange/__init__.py`` does."""
    for finder in sys.meta_path:
        if isinstance(finder, CoreImportHook):
            return finder
    hook = CoreImportHook()
    sys.meta_path.insert(0, hook)
    return hook


if __name__ == "__main__":
    if sys.argv[1:] == ["stamp"]:
        STAMP.write_text(source_digest() + "\n")
    elif sys.argv[1:] == ["digest"]:
        print(source_digest())
    elif sys.argv[1:] == ["modules"]:
        print(" ".join(COMPILED_MODULES))
    else:
        sys.exit("usage: python exchange/native.py stamp|digest|modules")
