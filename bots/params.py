"""A strategy's typed config from ``--param k=v`` and ``--params FILE.toml``.

Values are read as TOML literals (``5``, ``0.25``, ``true``, ``"x"``, ``[1, 2]``); a value
that is not valid TOML is taken as a plain string, so ``--param mode=fast`` works. Command
line values override the file's. ``ParamError`` messages name the parameter and list the
valid ones.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from bots.api import StrategyConfig


class ParamError(ValueError):
    """A parameter is unknown, malformed or of the wrong type."""


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}``. Raises ParamError on ``=``-less items."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {item!r}: expected NAME=VALUE")
        values[name] = parse_value(text.strip())
    return values


def parse_value(text: str) -> Any:
    """A TOML literal, else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def to_literal(value: Any) -> str:
    """The inverse of ``parse_value`` for TOML scalars and arrays (for child processes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_literal(v) for v in value) + "]"
    raise ParamError(f"cannot pass {value!r} as a parameter")


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Parameters from a TOML file: its ``[params]`` table if it has one, else the top level."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text())
    except OSError as exc:
        raise ParamError(f"cannot read params file {str(file)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParamError(f"params file {str(file)!r} is not valid TOML: {exc}") from None
    table = data.get("params", data)
    if not isinstance(table, dict):
        raise ParamError(f"params file {str(file)!r}: [params] must be a table")
    return table


def describe(config_type: type[StrategyConfig]) -> list[str]:
    """One line per parameter: ``name: type = default``."""
    lines = []
    for field in msgspec.structs.fields(config_type):
        kind = getattr(field.type, "__name__", None) or str(field.type)
        if field.default is not msgspec.NODEFAULT:
            lines.append(f"{field.name}: {kind} = {field.default!r}")
        elif field.default_factory is not msgspec.NODEFAULT:
            lines.append(f"{field.name}: {kind} = {field.default_factory()!r}")
        else:
            lines.append(f"{field.name}: {kind} (required)")
    return lines


def build_config(
    config_type: type[StrategyConfig],
    params: Mapping[str, Any] | None = None,
    file: str | Path | None = None,
    strategy_name: str = "the strategy",
) -> StrategyConfig:
    """The config instance: defaults, then ``file``, then ``params``. Raises ParamError."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update(load_params_file(file))
    values.update(params or {})
    names = [f.name for f in msgspec.structs.fields(config_type)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        known = "; ".join(describe(config_type)) or "none"
        raise ParamError(
            f"{strategy_name} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {known}"
        )
    try:
        return msgspec.convert(values, config_type, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit("`$.", 1)
        if len(where) == 2:
            name = where[1].rstrip("`").split(".")[0].split("[")[0]
            text = f"parameter {name!r}: {where[0].removesuffix(' - at ').strip()}"
        raise ParamError(f"{strategy_name}: {text}") from None
