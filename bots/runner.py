"""The socket shell around ``BotDriver``: gateway and relay connections, timer, sending.

``BotRunner.run(stop)`` keeps two connections alive until ``stop`` is set:

- gateway: log in (``cancel_on_disconnect`` on), resync account and orders, then feed every
  message to the driver; requests go out in batches as the driver's rate limit allows;
- relay: subscribe to ``instruments``, ``status``, ``book.S`` and ``trades.S`` for every
  symbol, feed the driver, and unsubscribe + subscribe a book whose ``prev_seq`` chain broke.

Either connection is re-established after it drops (backoff 0.2 s doubling to 5 s); while a
server has never been reached in the first ``STARTUP_GRACE_S`` (the whole system starting
together), failing to connect is logged at info, not as a warning. On
stop: ``on_stop``, then ``cancel_all`` per symbol, wait (briefly) for ``cancel_all_done``,
close, return 0. A refused API key ends the run with exit code 2.

A whole-system stop closes the gateway at the same moment: a gateway that is stopping cancels
a ``cancel_on_disconnect`` session's orders itself and then closes it (1001). So once the bot
logged in with ``login`` (``cancel_on_disconnect`` on), a gateway connection that is closed
or closes during the stop is logged at info, not as a warning; only a gateway that stays up
and does not confirm is. Neither connection is re-established once stopping, and a server
going away (1001) is not a warning either.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode
from websockets.protocol import State

from bots.driver import BotDriver
from exchange.protocol.codec import (
    encode,
    encode_batch,
    gateway_message_decoder,
    marketdata_message_decoder,
)
from exchange.protocol.messages import (
    CancelAllDone,
    Error,
    LoggedIn,
    Login,
    Pong,
    Register,
    Registered,
    Subscribe,
    Unsubscribe,
)

log = structlog.get_logger()

STOP_GRACE_S = 2.0
"""How long shutdown waits for ``cancel_all_done`` before closing anyway."""
STATS_EVERY_S = 30.0
STARTUP_GRACE_S = 15.0
"""How long a bot that has not yet reached a server waits for it quietly: started with the
rest of the system, the servers may not listen yet. Failures within it are logged at info."""


@dataclass(frozen=True)
class RunnerSettings:
    gateway: str
    marketdata: str
    account: str
    api_key: str | None
    register_cash: float = 100_000.0
    depth: int = 20


class FatalError(Exception):
    """A condition retrying cannot fix (a refused API key)."""


def _connect(url: str) -> Any:
    return connect(
        url, compression=None, open_timeout=5, close_timeout=1, max_size=2**22, proxy=None
    )


async def _frames(ws: ClientConnection) -> AsyncIterator[bytes]:
    """The messages of ``ws`` as they arrived, in bytes (text frames are not decoded to
    ``str``: msgspec reads and checks UTF-8 bytes itself); ends at a normal close, raises
    ``ConnectionClosedError`` otherwise, as iterating the connection does."""
    try:
        while True:
            yield await ws.recv(decode=False)
    except ConnectionClosedOK:
        return


class BotRunner:
    """See the module docstring."""

    def __init__(self, driver: BotDriver, settings: RunnerSettings) -> None:
        self.driver = driver
        self.settings = settings
        self.api_key = settings.api_key
        self._gateway: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._cancel_all_done = asyncio.Event()
        self._fatal: FatalError | None = None
        self._pending_stops = 0
        self._stopping = False
        self._orders_at_risk = False
        """Whether the gateway session is one (``register``) that does not cancel our orders
        on disconnect; a ``login`` session does."""
        self._clock = time.monotonic
        self._started = self._clock()
        self._reached: set[str] = set()
        """The servers (``gateway``, ``marketdata``) this run has connected to at least once."""

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> int:
        """Trade until ``stop`` is set or a fatal error; returns the exit code."""
        failed = asyncio.Event()
        tasks = [
            asyncio.create_task(self._keep(self._gateway_session, "gateway", failed)),
            asyncio.create_task(self._keep(self._marketdata_session, "marketdata", failed)),
            asyncio.create_task(self._timer()),
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._stats()),
        ]
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(failed.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._stopping = True
        if self._fatal is None:
            await self._shutdown()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._log_stats("bot_stopped")
        if self._fatal is not None:
            log.error("bot_fatal", reason=str(self._fatal))
            return 2
        return 0

    async def _shutdown(self) -> None:
        gateway = self._gateway
        requests = self.driver.stop_requests()
        if gateway is None or not self.driver.logged_in:
            if self._orders_at_risk:
                log.warning("stop_without_gateway", note="orders may stay open")
            else:
                log.info("stop_without_gateway", note="orders are cancelled on disconnect")
            return
        symbols = self.driver.context.symbols
        self._cancel_all_done.clear()
        self._pending_stops = len(symbols)
        done = asyncio.ensure_future(self._cancel_all_done.wait())
        closed = asyncio.ensure_future(gateway.wait_closed())
        problem = "TimeoutError"
        try:
            await gateway.send(encode_batch(list(requests)), text=True)
            await asyncio.wait([done, closed], timeout=STOP_GRACE_S, return_when=FIRST_COMPLETED)
        except (ConnectionClosed, OSError) as exc:
            problem = type(exc).__name__
        finally:
            done.cancel()
            closed.cancel()
        if self._cancel_all_done.is_set():
            log.info("orders_cancelled", symbols=list(symbols))
        elif gateway.state in (State.CLOSING, State.CLOSED) and not self._orders_at_risk:
            # the gateway is going away: it cancels this session's orders itself
            log.info("orders_cancelled_on_disconnect", symbols=list(symbols))
        else:
            log.warning("cancel_on_stop_unconfirmed", error=problem)
        await gateway.close()

    async def _keep(
        self,
        session: Callable[[ClientConnection], Awaitable[None]],
        name: str,
        failed: asyncio.Event,
    ) -> None:
        """Run ``session`` on a fresh connection to ``name`` forever, with backoff."""
        url = self.settings.gateway if name == "gateway" else self.settings.marketdata
        delay = 0.2
        while True:
            try:
                async with _connect(url) as ws:
                    self._reached.add(name)
                    log.info("connected", to=name, url=url)
                    delay = 0.2
                    await session(ws)
                if self._stopping or ws.close_code == CloseCode.GOING_AWAY:
                    log.info("disconnected", to=name, code=ws.close_code)
                else:
                    log.warning("disconnected", to=name, code=ws.close_code)
            except FatalError as exc:
                self._fatal = exc
                failed.set()
                return
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self._lost(name)
                starting = (
                    name not in self._reached and self._clock() - self._started < STARTUP_GRACE_S
                )
                report = log.info if self._stopping or starting else log.warning
                report("connection_failed", to=name, url=url, error=str(exc) or repr(exc))
            except InvalidURI as exc:
                self._fatal = FatalError(f"bad {name} URL {url!r}: {exc}")
                failed.set()
                return
            self._lost(name)
            if self._stopping:
                return
            await asyncio.sleep(delay)  # reconnect backoff
            if self._stopping:
                return
            delay = min(delay * 2, 5.0)

    def _lost(self, name: str) -> None:
        if name == "gateway":
            self._gateway = None
            self.driver.gateway_lost()
        else:
            self.driver.market_data_lost()

    # ------------------------------------------------------------------ gateway

    async def _gateway_session(self, ws: ClientConnection) -> None:
        if self.api_key is not None:
            hello: Any = Login(api_key=self.api_key, cancel_on_disconnect=True)
        else:
            hello = Register(account=self.settings.account, cash=self.settings.register_cash)
        await ws.send(encode(hello), text=True)
        async for frame in _frames(ws):
            messages, _ = gateway_message_decoder.decode_frame(frame)
            for message in messages:
                await self._on_gateway(ws, message)
            self._wake.set()

    async def _on_gateway(self, ws: ClientConnection, message: Any) -> None:
        now = self._clock()
        match message:
            case LoggedIn() | Registered():
                if isinstance(message, Registered):
                    self.api_key = message.api_key
                    log.info("registered", account=message.account)
                if message.account != self.settings.account:
                    raise FatalError(
                        f"the API key logs into account {message.account!r}, "
                        f"not {self.settings.account!r}"
                    )
                self._gateway = ws
                self._orders_at_risk = isinstance(message, Registered)
                if message.limits is None:
                    raise FatalError("the API key is an operator's: a bot needs an account's key")
                resync = self.driver.login(message.limits, now)
                log.info("logged_in", account=message.account, limits=str(message.limits))
                await ws.send(encode_batch(list(resync)), text=True)
            case Error(code="auth_failed" | "account_exists" | "register_disabled"):
                raise FatalError(f"{message.code}: {message.text}")
            case Error(code="not_logged_in" | "engine_unavailable"):
                report = log.info if self._stopping else log.warning
                report("gateway_error", code=message.code, text=message.text)
            case CancelAllDone() if isinstance(message.req_id, str) and message.req_id.startswith(
                "stop-"
            ):
                self.driver.gateway(message, now)
                self._pending_stops -= 1
                if self._pending_stops <= 0:
                    self._cancel_all_done.set()
            case Pong():
                pass
            case _:
                self.driver.gateway(message, now)

    async def _sender(self) -> None:
        """Send the driver's requests as the rate limit allows, batched per frame."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                ws = self._gateway
                if ws is None:
                    break
                now = self._clock()
                batch = self.driver.take_requests(now)
                if batch:
                    try:
                        await ws.send(encode_batch(list(batch)), text=True)
                    except ConnectionClosed:
                        break
                delay = self.driver.send_delay(self._clock())
                if delay is None:
                    break
                await asyncio.sleep(max(delay, 0.001))  # rate limiting, not synchronisation

    # ------------------------------------------------------------------ market data

    async def _marketdata_session(self, ws: ClientConnection) -> None:
        symbols = self.driver.context.symbols
        channels = ["instruments", "status"]
        for symbol in symbols:
            channels += [f"book.{symbol}", f"trades.{symbol}"]
        subscribe = Subscribe(channels=channels, depth=self.settings.depth, req_id="bot")
        await ws.send(encode(subscribe), text=True)
        async for frame in _frames(ws):
            messages, _ = marketdata_message_decoder.decode_frame(frame)
            resubscribe: list[str] = []
            now = self._clock()
            for message in messages:
                if isinstance(message, Error):
                    log.warning("marketdata_error", code=message.code, text=message.text)
                    continue
                resubscribe += self.driver.market_data(message, now)
            if resubscribe:
                book_channels = [f"book.{s}" for s in resubscribe]
                log.info("resubscribe", channels=book_channels)
                await ws.send(encode(Unsubscribe(channels=book_channels)), text=True)
                resubscribe_books = Subscribe(channels=book_channels, depth=self.settings.depth)
                await ws.send(encode(resubscribe_books), text=True)
            self._wake.set()

    # ------------------------------------------------------------------ timers

    async def _timer(self) -> None:
        interval = self.driver.strategy.timer_interval
        if not interval:
            return
        while True:
            await asyncio.sleep(interval)  # the strategy's clock
            self.driver.context.now_ns = max(self.driver.context.now_ns, time.time_ns())
            self.driver.timer(self._clock())
            self._wake.set()

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)  # periodic summary
            self._log_stats("bot_stats")

    def _log_stats(self, event: str) -> None:
        ctx = self.driver.context
        stats = {k: v for k, v in sorted(self.driver.stats.items()) if v}
        log.info(
            event,
            position=ctx.position(),
            equity=round(ctx.equity, 2),
            open_orders=len(ctx.orders),
            counts=msgspec.json.encode(stats).decode(),
        )
