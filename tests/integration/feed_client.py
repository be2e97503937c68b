"""A test client of the public feed that rebuilds books exactly as a user's client would.

A frame from the relay is one message or a JSON array of them (a batch); ``read()`` returns
them one by one and ``frames`` keeps how they were framed. It checks the contract while
reading: a book starts with ``book_snapshot``; every
``book_update``'s ``prev_seq`` equals the ``seq`` of the previous book message of its symbol on
this connection; a depth-limited book never holds more than ``depth`` levels a side.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support import seconds

SYMBOLS = ("AAA", "BBB")
"""The symbols of ``fake_engine.system_config``."""


class LocalBook:
    def __init__(self, message: dict[str, Any], depth: int | None) -> None:
        self.depth = depth
        self.seq = message["seq"]
        self.bids = {p: q for p, q in message["bids"]}
        self.asks = {p: q for p, q in message["asks"]}
        self.updates = 0

    def update(self, message: dict[str, Any]) -> None:
        assert message["prev_seq"] == self.seq, (message, self.seq)
        assert message["seq"] > self.seq
        for side, levels in ((self.bids, message["bids"]), (self.asks, message["asks"])):
            for price, qty in levels:
                if qty == 0:
                    assert price in side, ("removed a level never shown", price, message)
                    del side[price]
                else:
                    side[price] = qty
        if self.depth is not None:
            assert len(self.bids) <= self.depth and len(self.asks) <= self.depth, message
        self.seq = message["seq"]
        self.updates += 1

    def ladder(self) -> tuple[list[list[Any]], list[list[Any]]]:
        bids = [[p, self.bids[p]] for p in sorted(self.bids, reverse=True)]
        asks = [[p, self.asks[p]] for p in sorted(self.asks)]
        return bids, asks


class FeedClient:
    """One connection to the relay; ``read()`` returns the next message (batches split)."""

    def __init__(self, websocket: ClientConnection, depth: int | None = None) -> None:
        self.ws = websocket
        self.depth = depth
        self.books: dict[str, LocalBook] = {}
        self.snapshots: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.bbos: dict[str, dict[str, Any]] = {}
        self.heartbeat: dict[str, Any] | None = None
        self.seen: list[dict[str, Any]] = []
        self.frames: list[list[dict[str, Any]]] = []
        """The messages of each frame received, in order (a bare object: a list of one)."""
        self._pending: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, depth: int | None = None, **kwargs: Any) -> FeedClient:
        websocket = await asyncio.wait_for(connect(url, **kwargs), seconds(5))
        return cls(websocket, depth)

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def subscribe(self, *channels: str, **fields: Any) -> dict[str, Any]:
        """Subscribe and return the ``subscribed`` reply (other messages are applied); when
        it subscribed books, also wait for their snapshots."""
        if self.depth is not None:
            fields.setdefault("depth", self.depth)
        await self.send({"type": "subscribe", "channels": list(channels), **fields})
        reply = await self.until(lambda m: m["type"] in ("subscribed", "error"))
        if reply["type"] == "subscribed":
            books = {
                symbol
                for name in channels
                if name.startswith("book.")
                for symbol in (SYMBOLS if name == "book.*" else (name[5:],))
            }
            while books:
                message = await self.until(lambda m: m["type"] == "book_snapshot")
                books.discard(message["symbol"])
        return reply

    async def read(self, timeout: float = 5.0) -> dict[str, Any]:
        while not self._pending:
            async with asyncio.timeout(seconds(timeout)):  # cancel-safe, unlike wait_for
                frame = await self.ws.recv()
            assert isinstance(frame, str), "the relay sends text frames only"
            value = json.loads(frame)
            messages = value if isinstance(value, list) else [value]
            assert not isinstance(value, list) or len(value) > 1, "one message goes bare"
            self.frames.append(messages)
            self._pending.extend(messages)
        message = self._pending.pop(0)
        self._apply(message)
        return message

    async def until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Read (applying everything) until a message satisfies ``predicate``; return it."""
        async with asyncio.timeout(seconds(timeout)):
            while True:
                message = await self.read(timeout)
                if predicate(message):
                    return message

    async def sync(self, seqs: dict[str, int], timeout: float = 5.0) -> None:
        """Read until a heartbeat shows every symbol's book at least at ``seqs``: everything
        the relay sent for earlier events has then been read (one connection is in order)."""
        await self.until(
            lambda m: (
                m["type"] == "heartbeat"
                and all(m["seqs"].get(s, 0) >= seq for s, seq in seqs.items())
            ),
            timeout,
        )

    def _apply(self, message: dict[str, Any]) -> None:
        self.seen.append(message)
        kind = message["type"]
        if kind == "book_snapshot":
            self.snapshots.append(message)
            self.books[message["symbol"]] = LocalBook(message, self.depth)
        elif kind == "book_update":
            book = self.books.get(message["symbol"])
            assert book is not None, "book_update before book_snapshot"
            book.update(message)
        elif kind == "trade":
            self.trades.append(message)
        elif kind == "bbo":
            self.bbos[message["symbol"]] = message
        elif kind == "heartbeat":
            self.heartbeat = message
