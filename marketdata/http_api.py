"""The relay's plain-HTTP GET routes (pure: path and query in, status and JSON body out).

Same shapes as the feed (PROTOCOL.md §4): ``/api/v1/instruments`` (an ``instruments``
message), ``/api/v1/book/{symbol}?depth=N`` (a ``book_snapshot``, default depth 10, at most
1000), ``/api/v1/bbo/{symbol}`` (a ``bbo``), ``/api/v1/trades/{symbol}?limit=N`` (a
``trades`` message, newest last, default 100, at most the relay's trade history). Errors are
``error`` bodies: 404 ``unknown_symbol``, 400 ``invalid_message`` for a bad parameter, 503
``engine_unavailable`` before the relay has the engine's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from exchange.protocol.codec import encode, http_error_body
from exchange.protocol.messages import ErrorCode, Instruments, Trades
from marketdata.feed import DEFAULT_DEPTH, MAX_DEPTH, MarketFeed

PREFIX = "/api/v1/"
DEFAULT_TRADES_LIMIT = 100


def _error(status: int, code: ErrorCode, text: str) -> tuple[int, bytes]:
    return status, http_error_body(code, text)


def _int_param(
    query: dict[str, list[str]], name: str, default: int, low: int, high: int
) -> int | tuple[int, bytes]:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        return _error(400, "invalid_message", f"{name} must be an integer from {low} to {high}")
    return value


Route = Callable[[str, dict[str, list[str]]], tuple[int, bytes] | None]


def market_routes(feed: MarketFeed[Any], trade_history: int) -> Route:
    """A ``JsonRoute`` (see ``exchange.service.http``) answering the relay's GET API; None for
    paths that are not its own."""

    def route(path: str, query: dict[str, list[str]]) -> tuple[int, bytes] | None:
        if not path.startswith(PREFIX):
            return None
        rest = path[len(PREFIX) :]
        if rest == "instruments":
            return 200, encode(Instruments(feed.instruments))
        kind, _, symbol = rest.partition("/")
        if kind not in ("book", "bbo", "trades") or not symbol or "/" in symbol:
            return None
        symbol = unquote(symbol)
        if symbol not in feed.symbols:
            return _error(404, "unknown_symbol", f"unknown symbol {symbol!r}")
        if not feed.synced:
            return _error(503, "engine_unavailable", "no engine state yet")
        if kind == "book":
            depth = _int_param(query, "depth", DEFAULT_DEPTH, 1, MAX_DEPTH)
            if isinstance(depth, tuple):
                return depth
            return 200, encode(feed.book_snapshot(symbol, depth))
        if kind == "bbo":
            return 200, encode(feed.bbos[symbol])
        limit = _int_param(
            query, "limit", min(DEFAULT_TRADES_LIMIT, trade_history), 1, trade_history
        )
        if isinstance(limit, tuple):
            return limit
        trades = feed.recent_trades(symbol, limit) or []
        return 200, encode(Trades(symbol=symbol, trades=trades))

    return route
