"""Loading strategies (built-ins, module:Class, files) and their typed params."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.api import Strategy
from bots.loader import BUILTINS, StrategyLoadError, load_strategy_class
from bots.params import ParamError, build_config, parse_assignments, to_literal
from bots.strategies.maker import Maker, MakerConfig


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtins_load_and_have_default_configs(name: str) -> None:
    cls = load_strategy_class(name)
    assert issubclass(cls, Strategy)
    cls(build_config(cls.Config))


def write_module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)


GOOD = """
from bots.api import Strategy, StrategyConfig

class Cfg(StrategyConfig):
    size: int = 1

class Good(Strategy[Cfg]):
    pass

class NotAStrategy:
    pass
"""


def test_module_class_from_the_app_dir(tmp_path: Path) -> None:
    write_module(tmp_path, "user_strats_ok", GOOD)
    cls = load_strategy_class("user_strats_ok:Good", tmp_path)
    assert cls.__name__ == "Good"
    assert build_config(cls.Config, {"size": 4}).size == 4  # type: ignore[attr-defined]


def test_a_file_path_works_too(tmp_path: Path) -> None:
    write_module(tmp_path, "file_strat", GOOD)
    assert load_strategy_class("file_strat.py:Good", tmp_path).__name__ == "Good"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown strategy 'nope'"),
        ("no_such_module_xyz:Good", "cannot find module 'no_such_module_xyz'"),
        ("user_strats_err:Missing", "has no class 'Missing'; strategies found there: Good"),
        ("user_strats_err:NotAStrategy", "is not a strategy"),
        ("user_strats_syntax:X", "SyntaxError"),
        ("user_strats_dep:X", "No module named 'missing_dependency_xyz'"),
        ("missing.py:X", "does not exist"),
        (":X", "expected module:Class"),
    ],
)
def test_clear_errors(tmp_path: Path, spec: str, message: str) -> None:
    write_module(tmp_path, "user_strats_err", GOOD)
    write_module(tmp_path, "user_strats_syntax", "def broken(:\n")
    write_module(tmp_path, "user_strats_dep", "import missing_dependency_xyz\n")
    with pytest.raises(StrategyLoadError, match=message.replace("(", r"\(")):
        load_strategy_class(spec, tmp_path)


def test_missing_app_dir() -> None:
    with pytest.raises(StrategyLoadError, match="does not exist"):
        load_strategy_class("x:Y", "/no/such/dir")


def test_params_are_read_as_toml_literals_with_string_fallback() -> None:
    values = parse_assignments(["a=5", "b=0.25", "c=true", 'd="x y"', "e=[1, 2]", "f=fast"])
    assert values == {"a": 5, "b": 0.25, "c": True, "d": "x y", "e": [1, 2], "f": "fast"}
    for value in values.values():
        assert parse_assignments([f"k={to_literal(value)}"])["k"] == value
    with pytest.raises(ParamError, match="NAME=VALUE"):
        parse_assignments(["novalue"])


def test_build_config_layers_file_then_params(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    file.write_text("[params]\nlevels = 5\nspread_bps = 20\n")
    config = build_config(MakerConfig, {"levels": 2}, file, "maker")
    assert isinstance(config, MakerConfig)
    assert (config.levels, config.spread_bps) == (2, 20.0)
    assert isinstance(Maker(config).config, MakerConfig)


def test_build_config_errors_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"no parameter 'bogus'; its parameters: spread_bps"):
        build_config(MakerConfig, {"bogus": 1}, strategy_name="maker")
    with pytest.raises(ParamError, match=r"parameter 'levels': Expected `int`, got `str`"):
        build_config(MakerConfig, {"levels": "many"}, strategy_name="maker")
    bad = tmp_path / "bad.toml"
    bad.write_text("levels = = 3")
    with pytest.raises(ParamError, match="not valid TOML"):
        build_config(MakerConfig, {}, bad)
