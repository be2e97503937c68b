"""Hostile clients against the real processes (engine, gateway, relay on port 0).

Eight order-entry connections and two market-data connections send a few thousand frames that
the venue must refuse (invalid JSON, deep nesting, numbers out of range, unknown orders, binary
frames, empty batches). The rules of PROTOCOL.md §2 are asserted from outside:

- every message is answered: each readable ``req_id`` is echoed by a reply, and each message
  without one gets an ``error``;
- the only server closes are the listed ones (1008 after 100 invalid messages in 10 s; the
  client then reconnects and goes on);
- books and accounts are exactly as they were, and a well-behaved client trades as usual;
- no process wrote a traceback or an error-level log line.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.hostile import HostileFrame, refused_frames
from tests.integration.clients import http_get
from tests.integration.live_system import LiveSystem, live_system
from tests.support import seconds

pytestmark = pytest.mark.slow

ACCOUNTS = ["alice", "bob", "carol", "maker1", "maker2", "taker1", "noise1", "mm1"]
FRAMES_PER_CONNECTION = 1000
ALLOWED_CLOSES = {1008, 1009}


async def _connect(port: int, api_key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}", additional_headers=headers, max_size=2**22
    )
    if api_key is not None:
        hello = json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
        assert hello["type"] == "logged_in", hello
    return ws


def _messages(frame: str | bytes) -> list[dict[str, Any]]:
    value = json.loads(frame)
    return value if isinstance(value, list) else [value]


class Storm:
    """One hostile connection: sends frames one at a time, each followed by a ping, and
    checks that everything before the pong answers the frame."""

    def __init__(self, port: int, api_key: str | None, frames: list[HostileFrame]) -> None:
        self.port = port
        self.api_key = api_key
        self.frames = frames
        self.closes: list[int] = []
        self.messages_sent = 0
        self.unanswered: list[str] = []
        self._marker = 10**15 + random.Random(api_key).randrange(10**6) * 10**4

    async def run(self) -> None:
        ws = await _connect(self.port, self.api_key)
        try:
            for frame in self.frames:
                try:
                    await self._exchange(ws, frame)
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd is not None else None
                    assert code in ALLOWED_CLOSES, f"closed with {code}: {closed}"
                    self.closes.append(code)
                    ws = await _connect(self.port, self.api_key)
        finally:
            await ws.close()

    async def _exchange(self, ws: Any, frame: HostileFrame) -> None:
        self._marker += 1
        marker = self._marker
        await ws.send(frame.payload)
        self.messages_sent += len(frame.req_ids) + frame.anonymous_errors
        await ws.send(json.dumps({"type": "ping", "req_id": marker}))
        echoed: set[Any] = set()
        anonymous = 0
        while True:
            raw = await asyncio.wait_for(ws.recv(), seconds(10))
            for message in _messages(raw):
                if message.get("req_id") == marker and message["type"] == "pong":
                    break
                echoed.add(message.get("req_id"))
                if message["type"] == "error" and message.get("req_id") is None:
                    anonymous += 1
            else:
                continue
            break
        missing = [rid for rid in frame.req_ids if rid not in echoed]
        if missing or anonymous < frame.anonymous_errors:
            self.unanswered.append(f"{frame.payload!r:.200} missing={missing} anon={anonymous}")


async def _state(system: LiveSystem) -> dict[str, Any]:
    """Every account's account and orders (via the gateway) and every book (via the relay)."""
    state: dict[str, Any] = {}
    for account in ACCOUNTS:
        ws = await _connect(system.gateway_port, f"{account}-key")
        try:
            await ws.send(json.dumps([{"type": "get_account"}, {"type": "get_orders"}]))
            replies: list[dict[str, Any]] = []
            while len(replies) < 2:
                replies.extend(_messages(await asyncio.wait_for(ws.recv(), seconds(5))))
            for reply in replies:
                reply.pop("seq", None)
                reply.pop("ts", None)
            state[account] = replies
        finally:
            await ws.close()
    for symbol in ("AAPL", "BTC-PERP"):
        status, body = await http_get(system.marketdata_port, f"/api/v1/book/{symbol}?depth=50")
        assert status == 200
        book = json.loads(body)
        state[symbol] = (book["bids"], book["asks"])
    return state


async def _rest_orders(system: LiveSystem) -> None:
    """A small two-sided AAPL book from two accounts, so there is something to disturb."""
    for account, side, price in (("alice", "buy", 180.0), ("bob", "sell", 200.0)):
        ws = await _connect(system.gateway_port, f"{account}-key")
        try:
            order = {"type": "new_order", "symbol": "AAPL", "side": side, "qty": 3}
            await ws.send(json.dumps({**order, "price": price, "req_id": 1}))
            reply = _messages(await asyncio.wait_for(ws.recv(), seconds(5)))[0]
            assert reply["exec_type"] == "new", reply
        finally:
            await ws.close()


async def _relay_storm(port: int, frames: list[HostileFrame]) -> Storm:
    storm = Storm(port, None, frames)
    await storm.run()
    return storm


async def test_hostile_frames_change_nothing_and_hurt_nobody(tmp_path: Path) -> None:
    rng = random.Random(17)
    async with live_system(tmp_path) as system:
        await _rest_orders(system)
        before = await _state(system)
        storms = [
            Storm(
                system.gateway_port,
                f"{account}-key",
                refused_frames(rng, FRAMES_PER_CONNECTION, first_req_id=index * 10**9),
            )
            for index, account in enumerate(ACCOUNTS)
        ]
        relay_frames = [refused_frames(rng, 150, first_req_id=(20 + i) * 10**9) for i in range(2)]
        # An oversized frame closes with 1009 and nothing else happens.
        big = json.dumps({"type": "ping", "req_id": 1, "pad": "x" * 70_000})
        oversized = await _connect(system.gateway_port, "carol-key")
        await oversized.send(big)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(oversized.recv(), seconds(5))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

        await asyncio.wait_for(
            asyncio.gather(
                *(storm.run() for storm in storms),
                *(_relay_storm(system.marketdata_port, frames) for frames in relay_frames),
            ),
            seconds(240),
        )
        sent = sum(storm.messages_sent for storm in storms)
        assert sent > 20_000
        for storm in storms:
            assert storm.unanswered == [], storm.unanswered[:5]
        assert any(storm.closes for storm in storms), "the flood guard never closed anyone"
        after = await _state(system)
        assert after == before

        # The venue still trades: a crossing order fills against the resting ask.
        ws = await _connect(system.gateway_port, "carol-key")
        try:
            await ws.send(
                json.dumps(
                    {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 1}
                    | {"price": 200.0, "req_id": "ok"}
                )
            )
            seen: list[str] = []
            while "trade" not in seen:
                for message in _messages(await asyncio.wait_for(ws.recv(), seconds(5))):
                    if message["type"] == "execution_report":
                        seen.append(message["exec_type"])
        finally:
            await ws.close()

    for process in ("engine", "gateway", "marketdata"):
        assert "Traceback" not in system.stderr(process), system.stderr(process)[-2000:]
        errors = [e for e in system.log_events(process) if e.get("level") in ("error", "critical")]
        assert errors == [], errors[:3]
