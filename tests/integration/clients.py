"""Reusable test clients and in-process servers for integration tests (real sockets).

- ``running_engine`` / ``running_gateway``: start ``EngineApp`` / ``GatewayApp`` on port 0 on
  127.0.0.1 and stop them afterwards (async context managers).
- ``WsClient``: a JSON WebSocket client that flattens batch frames into single messages:
  ``next()`` is the next message, ``expect(type, **fields)`` skips to the first match (the
  skipped ones stay in ``skipped``), ``sync()`` sends a ``ping`` and returns everything
  received before the ``pong`` (a barrier: anything queued for this connection earlier has
  arrived).
- ``gateway_client`` (order entry, optional Bearer key) and ``event_client`` (engine event
  port, sends the ``StreamRequest``).
- ``http_get``: a plain HTTP GET (``/healthz``, ``/metrics``).

Every wait is bounded by ``tests.support.seconds``; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from exchange.engine import EngineApp
from exchange.protocol.config import SystemConfig, load_config
from gateway.server import GatewayApp
from marketdata.__main__ import instrument_infos
from marketdata.server import MarketDataRelay
from tests.support import seconds

Message = dict[str, Any]
DEFAULT_TIMEOUT = 5.0


def config_with(**sections: dict[str, Any]) -> SystemConfig:
    """The shipped config with some sections' fields replaced, e.g.
    ``config_with(gateway={"burst": 2})``."""
    config = load_config(None)
    changes: dict[str, Any] = {}
    for name, fields in sections.items():
        if isinstance(fields, dict):
            changes[name] = msgspec.structs.replace(getattr(config, name), **fields)
        else:
            changes[name] = fields
    return msgspec.structs.replace(config, **changes)


@asynccontextmanager
async def running_engine(
    config: SystemConfig | None = None, **kwargs: Any
) -> AsyncIterator[EngineApp]:
    """An engine on 127.0.0.1, on free ports unless ``command_port``/``event_port`` say."""
    kwargs.setdefault("command_port", 0)
    kwargs.setdefault("event_port", 0)
    app = EngineApp(config or load_config(None), **kwargs)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@asynccontextmanager
async def running_gateway(
    engine_url: str, config: SystemConfig | None = None, *, wait_up: bool = True, **kwargs: Any
) -> AsyncIterator[GatewayApp]:
    """A gateway on a free port, linked to ``engine_url`` (waits for the link unless told)."""
    kwargs.setdefault("port", 0)
    kwargs.setdefault("startup_wait", 0.0)
    app = GatewayApp(config or load_config(None), engine_url=engine_url, **kwargs)
    await app.start()
    try:
        if wait_up:
            await asyncio.wait_for(app.link.wait_up(), seconds(DEFAULT_TIMEOUT))
        yield app
    finally:
        await app.stop()


@asynccontextmanager
async def running_relay(
    engine: EngineApp, config: SystemConfig | None = None
) -> AsyncIterator[MarketDataRelay]:
    """A market-data relay on a free port, reading ``engine``'s event port."""
    config = config or load_config(None)
    relay = MarketDataRelay(
        upstream=f"ws://127.0.0.1:{engine.event_port}",
        instruments=instrument_infos(config),
        settings=config.marketdata,
        port=0,
    )
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


def engine_url(engine: EngineApp) -> str:
    return f"ws://127.0.0.1:{engine.command_port}"


class WsClient:
    """A JSON client over one WebSocket connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.buffer: deque[Message] = deque()
        self.skipped: list[Message] = []
        self.frames = 0
        self.greeting: Message | None = None
        """The ``logged_in`` message ``gateway_client`` consumed, if it logged in."""
        self._req_ids = 0

    # ------------------------------------------------------------------ sending

    async def send(self, *messages: Message) -> None:
        """One message as an object, several as one batch frame."""
        payload: Any = messages[0] if len(messages) == 1 else list(messages)
        await self.ws.send(json.dumps(payload))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    # ------------------------------------------------------------------ receiving

    async def frame(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The next frame, parsed (a dict, or a list for a batch)."""
        return await self._frame(seconds(timeout))

    async def _frame(self, limit: float) -> Any:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for may swallow a cancel that
        # lands as a frame arrives, and a cancelled reader would then go on reading.
        async with asyncio.timeout(limit):
            raw = await self.ws.recv()
        self.frames += 1
        return json.loads(raw)

    async def next(self, timeout: float = DEFAULT_TIMEOUT) -> Message:
        """The next message (members of batch frames one by one)."""
        return await self._next(seconds(timeout))

    async def _next(self, limit: float) -> Message:
        if not self.buffer:
            parsed = await self._frame(limit)
            if isinstance(parsed, list):
                self.buffer.extend(parsed)
            else:
                self.buffer.append(parsed)
        return self.buffer.popleft()

    async def expect(
        self,
        type: str | None = None,
        where: Callable[[Message], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> Message:
        """Skip to the first message of ``type`` with ``fields`` (and ``where``)."""
        deadline = asyncio.get_running_loop().time() + seconds(timeout)
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {type} {fields}; skipped {self.skipped[-5:]}")
            try:
                message = await self._next(left)
            except TimeoutError:
                raise TimeoutError(f"no {type} {fields}; skipped {self.skipped[-5:]}") from None
            if (
                (type is None or message.get("type") == type)
                and all(message.get(k) == v for k, v in fields.items())
                and (where is None or where(message))
            ):
                return message
            self.skipped.append(message)

    async def sync(self, timeout: float = DEFAULT_TIMEOUT) -> list[Message]:
        """Send a ping and return every message that arrives before its pong."""
        self._req_ids += 1
        token = f"sync-{self._req_ids}"
        await self.send({"type": "ping", "req_id": token})
        before: list[Message] = []
        while True:
            message = await self.next(timeout)
            if message.get("type") == "pong" and message.get("req_id") == token:
                return before
            before.append(message)

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read until the server closes the connection; returns the close code."""

        async def drain() -> None:
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed:
                return

        await asyncio.wait_for(drain(), seconds(timeout))
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


@asynccontextmanager
async def gateway_client(
    port: int,
    api_key: str | None = None,
    *,
    login: bool = False,
    path: str = "/",
    **connect_kwargs: Any,
) -> AsyncIterator[WsClient]:
    """A client of the gateway on ``port``. ``api_key`` goes in the Bearer header, or with
    ``login=True`` in a ``login`` message; either way the ``logged_in`` answer is consumed
    (kept in ``client.greeting``)."""
    headers = dict(connect_kwargs.pop("additional_headers", None) or {})
    if api_key is not None and not login:
        headers["Authorization"] = f"Bearer {api_key}"
    connect_kwargs.setdefault("open_timeout", seconds(DEFAULT_TIMEOUT))
    connect_kwargs.setdefault("close_timeout", seconds(2))
    async with connect(
        f"ws://127.0.0.1:{port}{path}",
        compression=None,
        proxy=None,
        additional_headers=headers,
        **connect_kwargs,
    ) as ws:
        client = WsClient(ws)
        if api_key is not None:
            if login:
                await client.send({"type": "login", "api_key": api_key})
            greeting = await client.next()
            assert greeting["type"] == "logged_in", greeting
            client.greeting = greeting
        yield client


@asynccontextmanager
async def event_client(port: int, since: int | None = None) -> AsyncIterator[WsClient]:
    """A consumer of the engine's event port that has sent ``{"type":"stream","since":…}``."""
    async with connect(
        f"ws://127.0.0.1:{port}",
        compression=None,
        proxy=None,
        max_size=None,
        max_queue=None,  # never pause reading: closing must not wait behind unread frames
        open_timeout=seconds(DEFAULT_TIMEOUT),
        close_timeout=seconds(2),
    ) as ws:
        client = WsClient(ws)
        await client.send({"type": "stream", "since": since})
        yield client


async def http_get(port: int, path: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, bytes]:
    """GET ``path`` on 127.0.0.1:``port``; returns (status, body)."""

    async def fetch() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body

    return await asyncio.wait_for(fetch(), seconds(timeout))


class CommandClient(WsClient):
    """A raw client of the engine's command port (what a gateway sends): envelopes out,
    ``reply``/``push`` objects in."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self._ids = 0

    async def submit(self, account: str, command: Message) -> Message:
        """Send one ``submit`` envelope and return its ``reply`` (pushes are skipped)."""
        self._ids += 1
        await self.send({"type": "submit", "id": self._ids, "account": account, "command": command})
        return await self.expect("reply", id=self._ids)

    async def call(self, envelope: Message) -> Message:
        """Send any envelope (its ``id`` is set here) and return its reply."""
        self._ids += 1
        await self.send({**envelope, "id": self._ids})
        return await self.expect("reply", id=self._ids)


@asynccontextmanager
async def command_client(port: int) -> AsyncIterator[CommandClient]:
    """A connection to the engine's command port, as a gateway would open it."""
    async with connect(
        f"ws://127.0.0.1:{port}",
        compression=None,
        proxy=None,
        max_size=None,
        max_queue=None,  # never pause reading: closing must not wait behind unread frames
        open_timeout=seconds(DEFAULT_TIMEOUT),
        close_timeout=seconds(2),
    ) as ws:
        yield CommandClient(ws)


async def read_until_closed(client: WsClient) -> tuple[list[dict[str, Any]], int | None]:
    """Every message sent to ``client`` (buffered ones first) until the server closes the
    connection, and the close code."""
    messages = list(client.buffer)
    try:
        while True:
            parsed = json.loads(await client.ws.recv())
            messages += parsed if isinstance(parsed, list) else [parsed]
    except ConnectionClosed:
        return messages, client.ws.close_code
