"""Bots files (``python -m bots --config bots.toml``): parsing, checks, child command lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from bots.cli import parser
from bots.supervisor import check, child_argv, load_bots_file

BOTS = """
config = "system.toml"
gateway = "ws://127.0.0.1:9101"
app_dir = "strats"

[[bot]]
name = "m1"
strategy = "maker"
account = "maker1"
api_key = "maker1-key"
symbol = "AAPL"
seed = 3
params = { levels = 2, spread_bps = 7.5 }

[[bot]]
strategy = "taker"
account = "taker1"
symbol = "AAPL"
"""


def args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


def test_child_command_lines(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(BOTS)
    spec = load_bots_file(path)
    argv = child_argv(spec, spec.bot[0], tmp_path, args("--config", str(path)))
    assert argv[:3] == [sys.executable, "-m", "bots"]
    joined = " ".join(argv)
    assert "--strategy maker --account maker1 --symbol AAPL --name bot-m1" in joined
    assert "--api-key maker1-key --seed 3" in joined
    assert "--param levels=2 --param spread_bps=7.5" in joined
    assert f"--config {tmp_path / 'system.toml'}" in joined
    assert "--gateway ws://127.0.0.1:9101" in joined
    assert f"--app-dir {tmp_path / 'strats'}" in joined
    assert "--marketdata" not in joined
    second = " ".join(child_argv(spec, spec.bot[1], tmp_path, args("--marketdata", "ws://x:1")))
    assert "--name bot-taker1" in second and "--marketdata ws://x:1" in second
    assert "--api-key" not in second


def test_every_bot_is_checked_before_launch(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(BOTS.replace("levels = 2", "levels = 2, nope = 1"))
    (tmp_path / "strats").mkdir()
    with pytest.raises(ValueError, match="bot 'm1': maker has no parameter 'nope'"):
        check(load_bots_file(path), tmp_path, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[bot]]\nstrategy = 'maker'\n", "missing required field `account`"),
        (BOTS + "\n[[bot]]\nname='m1'\nstrategy='maker'\naccount='x'\nsymbol='A'\n", "duplicate"),
        ("[[bot]]\nstrategy='maker'\naccount='a'\nsymbol='A'\ncolour='red'\n", "unknown field"),
    ],
)
def test_bad_bots_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_bots_file(path)
