"""Finding a strategy class from ``--strategy``: a built-in name or ``module:Class``.

``module`` is imported with the app directory (``--app-dir``, default: the current
directory) first on ``sys.path``; ``path/to/file.py:Class`` loads a file directly. Every
failure raises ``StrategyLoadError`` with a message meant for the user.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from bots.api import Strategy

BUILTINS: dict[str, str] = {
    "maker": "bots.strategies.maker:Maker",
    "taker": "bots.strategies.taker:Taker",
    "random": "bots.strategies.random_trader:RandomTrader",
    "market_maker": "bots.strategies.market_maker:MarketMaker",
    "gambler": "bots.strategies.gambler:Gambler",
    "news_trader": "bots.strategies.news_trader:NewsTrader",
}
"""Built-in strategy names and where they live."""


class StrategyLoadError(Exception):
    """``--strategy`` names nothing loadable; the message says why and what would work."""


def load_strategy_class(spec: str, app_dir: str | Path | None = None) -> type[Strategy[Any]]:
    """The Strategy subclass that ``spec`` names. Raises StrategyLoadError."""
    spec = spec.strip()
    target = BUILTINS.get(spec, spec)
    if ":" not in target:
        raise StrategyLoadError(
            f"unknown strategy {spec!r}: use a built-in ({', '.join(BUILTINS)}) "
            "or module:Class (e.g. my_strategies:MeanReversion)"
        )
    module_name, _, class_name = target.rpartition(":")
    if not module_name or not class_name:
        raise StrategyLoadError(f"bad strategy {spec!r}: expected module:Class")
    directory = Path(app_dir) if app_dir is not None else Path.cwd()
    if not directory.is_dir():
        raise StrategyLoadError(f"app directory {str(directory)!r} does not exist")
    if module_name.endswith(".py") or "/" in module_name:
        module = _load_file(directory / module_name)
    else:
        module = _import(module_name, directory)
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        found = sorted(
            name
            for name, value in vars(module).items()
            if inspect.isclass(value) and issubclass(value, Strategy) and value is not Strategy
        )
        hint = f"; strategies found there: {', '.join(found)}" if found else ""
        raise StrategyLoadError(
            f"module {module_name!r} has no class {class_name!r}{hint}"
        ) from None
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyLoadError(
            f"{module_name}:{class_name} is not a strategy: it must be a class deriving from "
            "bots.api.Strategy"
        )
    if cls is Strategy:
        raise StrategyLoadError("bots.api.Strategy itself does nothing: subclass it")
    return cls


def _import(module_name: str, directory: Path) -> ModuleType:
    path_entry = str(directory.resolve())
    if path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise StrategyLoadError(
                f"cannot find module {module_name!r} in {path_entry} (or on sys.path); "
                "run from the directory that holds it or pass --app-dir"
            ) from None
        raise StrategyLoadError(_import_failure(module_name, exc)) from None
    except Exception as exc:
        raise StrategyLoadError(_import_failure(module_name, exc)) from None


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise StrategyLoadError(f"strategy file {str(path)!r} does not exist")
    name = f"_bot_strategy_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StrategyLoadError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise StrategyLoadError(_import_failure(str(path), exc)) from None
    return module


def _import_failure(what: str, exc: BaseException) -> str:
    """A short account of an exception raised while importing user code: where and what."""
    frames = traceback.extract_tb(exc.__traceback__)
    location = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        location = f" ({exc.filename}:{exc.lineno})"
    elif frames:
        last = frames[-1]
        location = f" ({last.filename}:{last.lineno})"
    return f"error while importing {what!r}{location}: {type(exc).__name__}: {exc}"
