"""Command-line flags with environment fallbacks.

Precedence: a flag on the command line, else ``EXCHANGE_<PROCESS>_<FLAG>``, else
``EXCHANGE_<FLAG>`` (handy for ``--host``/``--config`` shared by all processes in ``.env``),
else the value from the config file, else the built-in default. ``<FLAG>`` is the flag's
destination in upper case: ``--command-port`` -> ``EXCHANGE_ENGINE_COMMAND_PORT`` or
``EXCHANGE_COMMAND_PORT``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

_UNSET: Any = object()


def base_parser(
    process: str, description: str, *, log_file: bool = True
) -> argparse.ArgumentParser:
    """A parser with the flags every process takes: ``--host``, ``--config`` and, for a
    process that writes a log file (``log_file``), ``--log-dir``.

    Add process flags with ``default=None``; ``resolve`` fills in env and config values
    (so ``--log-dir`` also comes from ``EXCHANGE_<PROCESS>_LOG_DIR`` or ``EXCHANGE_LOG_DIR``;
    its fallback, ``logs``, is relative to the working directory).
    """
    parser = argparse.ArgumentParser(prog=f"python -m {process}", description=description)
    parser.add_argument("--host", default=None, help="interface to bind or reach (127.0.0.1)")
    parser.add_argument("--config", default=None, help="system TOML file (default: shipped)")
    if log_file:
        parser.add_argument(
            "--log-dir",
            default=None,
            help="directory of the JSON log file (default: ./logs; env EXCHANGE_LOG_DIR)",
        )
    return parser


def resolve(
    args: argparse.Namespace,
    process: str,
    fallbacks: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Final settings: each flag from the command line, env, or ``fallbacks`` (config values).

    Environment values are converted to the type of the fallback (int, float, bool, list).
    Raises ValueError naming the variable when an environment value does not convert.
    """
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for name, value in vars(args).items():
        if value is not None:
            settings[name] = value
            continue
        fallback = fallbacks.get(name)
        for var in (f"EXCHANGE_{process.upper()}_{name.upper()}", f"EXCHANGE_{name.upper()}"):
            if var in env:
                settings[name] = _convert(env[var], fallback, var)
                break
        else:
            settings[name] = fallback
    return settings


def _convert(text: str, like: Any, var: str) -> Any:
    try:
        if isinstance(like, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        if isinstance(like, Sequence) and not isinstance(like, str):
            return [part.strip() for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"{var}={text!r} is not a valid {type(like).__name__}") from exc
    return text
