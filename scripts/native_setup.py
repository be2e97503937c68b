"""Compile the given core modules with mypyc, in place (run by ``scripts/build_native``).

The modules share one runtime library. Naming its group inside the package puts that library
at ``exchange/core/_native__mypyc*.so``, beside the modules that load it, so the compiled core
imports from any working directory (the ``mypyc`` command line would name the group by a hash
and leave it at the repository root, importable only from there).

    python scripts/native_setup.py exchange/core/book.py exchange/core/accounts.py ...
"""

from __future__ import annotations

import sys

from mypyc.build import mypycify
from setuptools import setup

GROUP = "exchange.core._native"


def main(paths: list[str]) -> None:
    """Build the extension modules for ``paths`` beside their sources."""
    setup(
        name="exchange-core-native",
        ext_modules=mypycify(paths, opt_level="3", group_name=GROUP),
        script_args=["build_ext", "--inplace"],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
