"""Running a process: uvloop, SIGTERM/SIGINT to a stop event, the ``listening`` line."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from exchange.protocol.config import ConfigError
from exchange.service.logs import configure_logging

S = TypeVar("S")
C = TypeVar("C")


def announce_listening(**ports: int) -> None:
    """Print the one stdout line tests and scripts wait for: ``listening name=port ...``."""
    fields = " ".join(f"{name}={port}" for name, port in ports.items())
    print(f"listening {fields}", flush=True)


_early_stop = False


def _remember_early_stop(_signum: int, _frame: object) -> None:
    global _early_stop
    _early_stop = True


def catch_early_signals() -> None:
    """Until the event loop installs its handlers, remember SIGTERM/SIGINT instead of dying:
    a process told to stop while still starting then stops cleanly (exit 0) once it can."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_early_stop)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call inside the running loop). Already set if one
    arrived since ``catch_early_signals``."""
    stop = asyncio.Event()
    if _early_stop:
        stop.set()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    return stop


def tune_gc() -> None:
    """Fewer, cheaper cyclic garbage collections for a long-running server: what is alive at
    start-up (modules, configuration) is frozen out of every collection, and the youngest
    generation is collected every 50,000 allocations instead of 700. The hot paths allocate
    short-lived acyclic objects that reference counting frees anyway; frequent collections
    only add pauses to the latency tail. ``EXCHANGE_GC=default`` keeps Python's settings."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


def run(main: Callable[[], Coroutine[Any, Any, int | None]]) -> None:
    """Run ``main`` on uvloop (asyncio when unavailable), with ``tune_gc`` unless
    ``EXCHANGE_GC=default``, and exit with its return code."""
    if os.environ.get("EXCHANGE_GC", "tuned") != "default":
        tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Unix
        code = asyncio.run(main())
    else:
        code = uvloop.run(main())
    sys.exit(code or 0)


def launch(
    process: str,
    argv: Sequence[str] | None,
    parse: Callable[[Sequence[str] | None], tuple[dict[str, Any], C]],
    serve: Callable[[dict[str, Any], C], Coroutine[Any, Any, int | None]],
) -> None:
    """The whole ``main()`` of a process: parse settings (a bad flag, environment value or
    config file exits 2 with one clear line on stderr), set up logging, serve until SIGTERM."""
    catch_early_signals()
    try:
        settings, config = parse(argv)
    except (ConfigError, ValueError) as exc:
        print(f"{process}: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(process, str(settings["log_dir"]))
    run(lambda: serve(settings, config))
