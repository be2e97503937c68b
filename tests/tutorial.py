"""The tutorial's text (docs/strategies.md) taken apart the way a reader uses it: the files
it asks to create and the shell commands it asks to paste (tests/unit/test_tutorial.py,
tests/integration/test_bots_live.py)."""

from __future__ import annotations

import re
import shlex

from tests.support import REPO_ROOT

TUTORIAL = REPO_ROOT / "docs" / "strategies.md"
VENV_PYTHON = ".venv/bin/python"
"""The interpreter as the tutorial names it (relative to the clone's top directory)."""

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NAMED = re.compile(r"# ([\w.-]+\.(?:py|toml))\n")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block of ``text`` as (language, content)."""
    return [(lang, body) for lang, body in _BLOCK.findall(text)]


def tutorial_files(text: str) -> dict[str, str]:
    """The blocks that name their file on their first line (``# NAME.py``), by name."""
    files = {}
    for _lang, body in code_blocks(text):
        named = _NAMED.match(body)
        if named:
            files[named.group(1)] = body
    return files


def shell_commands(text: str) -> list[list[str]]:
    """The commands of the ``bash`` blocks, as argv (continuation lines joined, comments
    dropped)."""
    commands = []
    for lang, body in code_blocks(text):
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def bots_commands(text: str) -> list[list[str]]:
    """The arguments after ``python -m bots`` of every bots command of ``text``."""
    return [argv[3:] for argv in shell_commands(text) if argv[1:3] == ["-m", "bots"]]
