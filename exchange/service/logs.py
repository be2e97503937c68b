"""Logging set-up: structlog JSON lines to ``logs/<process>.log`` plus a short readable line on
stderr. Call ``configure_logging`` once per process, before the first log call.

Never log per order or per market-data message: count those in metrics instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

_QUIET_KEYS = {"event", "level", "timestamp", "process"}


def configure_logging(process: str, log_dir: str | Path = "logs", level: str = "info") -> Path:
    """Send this process's logs to ``<log_dir>/<process>.log`` (JSON) and stderr (short).

    Returns the log file path.
    """
    directory = Path(log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{process}.log"
    sink: TextIO = path.open("a", buffering=1, encoding="utf-8")

    def tee(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        event_dict["process"] = process
        sink.write(json.dumps(event_dict, default=str) + "\n")
        details = " ".join(f"{k}={v}" for k, v in event_dict.items() if k not in _QUIET_KEYS)
        return f"{event_dict.get('level', 'info'):<7} {event_dict.get('event')} {details}".rstrip()

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            tee,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    return path
