"""The tutorial (docs/strategies.md) as a newcomer pastes it, from the top directory of a
fresh clone after ``./scripts/run``.

Its files are the code blocks whose first line names them (``# my_strategies.py``); its
commands are the lines of its ``bash`` blocks. Every command runs the venv's interpreter
(``.venv/bin/python``: a bare ``python`` is not the project's outside the venv), every
account it trades is an account of the default config that no Procfile bot trades (else the
tutorial's bot would get that bot's reports and share its position), and the files and
commands fit together: strategies load, parameters are valid, the bots file's paths exist,
the error message shown is the one printed, and the tutorial's own tests pass. The bot
command itself runs against real processes in ``tests/integration/test_bots_live.py``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.cli import parser
from bots.loader import StrategyLoadError, load_strategy_class
from bots.params import build_config, parse_assignments
from bots.supervisor import check, load_bots_file
from exchange.protocol.config import load_config
from tests.botsim import procfile_bots
from tests.support import REPO_ROOT, seconds
from tests.tutorial import (
    TUTORIAL,
    VENV_PYTHON,
    bots_commands,
    code_blocks,
    shell_commands,
    tutorial_files,
)

README = REPO_ROOT / "README.md"


def procfile_accounts() -> set[str]:
    return {bot["account"] for bot in procfile_bots()}


def config_keys() -> dict[str, str | None]:
    """Account name -> API key in the default config."""
    return {account.name: account.api_key for account in load_config(None).accounts}


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """A directory holding the tutorial's files, as the clone's top directory would; the
    strategy modules imported from it are forgotten afterwards."""
    for name, body in tutorial_files(TUTORIAL.read_text()).items():
        (tmp_path / name).write_text(body)
    saved_path = list(sys.path)
    yield tmp_path
    sys.path[:] = saved_path
    for module in ("my_strategies", "test_my_strategies"):
        sys.modules.pop(module, None)


def test_the_tutorial_has_its_files_and_commands() -> None:
    text = TUTORIAL.read_text()
    assert {"my_strategies.py", "test_my_strategies.py", "join.toml", "bots.toml"} <= set(
        tutorial_files(text)
    )
    assert len(bots_commands(text)) >= 4


def test_every_command_runs_the_venvs_python() -> None:
    for argv in shell_commands(TUTORIAL.read_text()):
        assert argv[0] == VENV_PYTHON, f"not run with {VENV_PYTHON}: {shlex.join(argv)}"


def test_the_tutorial_trades_on_an_account_no_procfile_bot_uses() -> None:
    keys, taken = config_keys(), procfile_accounts()
    text = TUTORIAL.read_text()
    accounts: list[tuple[str, str | None]] = []
    for args in bots_commands(text):
        parsed = parser().parse_args(args)
        if parsed.account is not None:
            accounts.append((parsed.account, parsed.api_key))
    bots_file = tutorial_files(text)["bots.toml"]
    accounts += re.findall(r'account = "([^"]+)"\napi_key = "([^"]+)"', bots_file)
    # README's pointer to the tutorial names an account too
    readme = " ".join(README.read_text().split())
    accounts += re.findall(r"--account (\S+) --api-key ([^\s`]+)", readme)
    assert accounts
    for account, api_key in accounts:
        assert account in keys, f"{account!r} is not an account of exchange/default.toml"
        assert api_key == keys[account], f"{api_key!r} is not {account}'s key"
        assert account not in taken, f"a Procfile bot trades {account!r} already"


def test_the_readme_client_logs_in_as_nobodys_bot() -> None:
    by_key = {key: name for name, key in config_keys().items()}
    bearer = re.findall(r"Bearer ([\w-]+)", README.read_text())
    assert bearer
    for key in bearer:
        assert key in by_key and by_key[key] not in procfile_accounts(), key


def test_the_tutorials_commands_fit_its_files(clone: Path) -> None:
    for args in bots_commands(TUTORIAL.read_text()):
        parsed = parser().parse_args(args)
        if parsed.config is not None:  # a bots file: what the supervisor checks first
            spec = load_bots_file(clone / parsed.config)
            check(spec, clone, None)
            assert spec.config is None or (REPO_ROOT / spec.config).is_file(), spec.config
            continue
        cls = load_strategy_class(parsed.strategy, clone)
        params = parse_assignments(parsed.param or [])
        file = clone / parsed.params if parsed.params else None
        build_config(cls.Config, params, file=file, strategy_name=parsed.strategy)


def test_the_error_shown_for_a_typo_is_the_one_printed(clone: Path) -> None:
    shown = [
        line
        for lang, body in code_blocks(TUTORIAL.read_text())
        if lang == ""
        for line in body.splitlines()
        if line.startswith("python -m bots: error:")
    ]
    assert len(shown) == 1
    with pytest.raises(StrategyLoadError) as failure:
        load_strategy_class("my_strategies:JoinBid", clone)
    assert shown[0] == f"python -m bots: error: {failure.value}"


def test_the_tutorials_tests_pass(clone: Path) -> None:
    (pytest_command,) = [
        argv for argv in shell_commands(TUTORIAL.read_text()) if argv[1:3] == ["-m", "pytest"]
    ]
    done = subprocess.run(
        [sys.executable, *pytest_command[1:], "-p", "no:cacheprovider"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
