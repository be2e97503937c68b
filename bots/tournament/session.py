"""The tournament's two connections and its rounds.

- ``OperatorSession``: the gateway session of an operator key (PROTOCOL §3.3). ``open`` logs
  in and refuses a key that is not an operator's; ``start_round`` sends ``start_round`` and
  returns the venue's ``round_started`` for it, riding out an engine restart (the gateway
  keeps the session open and answers ``engine_unavailable`` meanwhile) or a dropped gateway
  connection. A request whose answer was lost is not sent twice if the relay already showed
  its ``round_started`` (the name identifies it), so a retry never starts two rounds.
- ``RoundsFeed``: the relay's ``rounds`` channel (``round_started`` and ``leaderboard``),
  reconnected after a drop.
- ``play_rounds``: for each round, start it, let it run its seconds, then take the first
  leaderboard of the round that arrives after them as its final standings (``RoundSpan``).

Every wait is bounded and gives up as soon as ``stop`` is set (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bots.tournament.standings import RoundSpan
from exchange.protocol.codec import encode
from exchange.protocol.messages import Leaderboard, Login, RoundStarted, StartRound, Subscribe

LOGIN_TIMEOUT_S = 10.0
"""How long the login may take (the gateway asks the engine for the key)."""
START_TIMEOUT_S = 60.0
"""How long a ``start_round`` may wait for the venue (an engine restarting)."""
FINAL_TIMEOUT_S = 60.0
"""How long the end of a round may wait for its final leaderboard (an engine restarting)."""
RETRY_S = 0.25


class TournamentError(Exception):
    """Bad input or an unusable venue before any round: one line, exit code 2."""


class RoundFailed(Exception):
    """The venue stopped answering mid-tournament: the completed rounds are kept."""


class Interrupted(Exception):
    """``stop`` was set (Ctrl-C) while waiting."""


def _connect(url: str) -> Any:
    return connect(
        url, compression=None, open_timeout=5, close_timeout=1, max_size=2**24, proxy=None
    )


def _messages(frame: bytes | str) -> list[dict[str, Any]]:
    """The JSON objects of a frame (one message or a batch); anything else is skipped."""
    try:
        parsed = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return []
    members = parsed if isinstance(parsed, list) else [parsed]
    return [m for m in members if isinstance(m, dict)]


async def _until(
    stop: asyncio.Event, changed: asyncio.Condition, ready: Callable[[], bool], timeout: float
) -> bool:
    """Wait until ``ready()`` (re-checked whenever ``changed`` is notified); False on timeout.
    Raises Interrupted when ``stop`` is set first."""

    async def condition() -> None:
        async with changed:
            await changed.wait_for(lambda: ready() or stop.is_set())

    try:
        await asyncio.wait_for(condition(), timeout)
    except TimeoutError:
        if stop.is_set():
            raise Interrupted from None
        return ready()
    if stop.is_set() and not ready():
        raise Interrupted
    return True


class RoundsFeed:
    """The relay's ``rounds`` channel: every ``round_started`` seen, and the leaderboards."""

    def __init__(self, url: str, stop: asyncio.Event) -> None:
        self.url = url
        self.stop = stop
        self.changed = asyncio.Condition()
        self.started: list[RoundStarted] = []
        self.latest: Leaderboard | None = None
        self.boards = 0
        """Leaderboards received so far (repeats included)."""
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and subscribe. Raises TournamentError when the relay cannot be reached."""
        try:
            ws = await _connect(self.url)
            await self._subscribe(ws)
        except (OSError, TimeoutError, InvalidURI, InvalidHandshake, ConnectionClosed) as exc:
            raise TournamentError(f"cannot reach the relay at {self.url}: {exc}") from None
        self._task = asyncio.create_task(self._read(ws))
        self._wake = asyncio.create_task(self._notify_on_stop())

    async def _subscribe(self, ws: ClientConnection) -> None:
        await ws.send(encode(Subscribe(channels=["rounds"], req_id="rounds")), text=True)
        async with asyncio.timeout(10):
            while True:
                for message in _messages(await ws.recv(decode=False)):
                    if message.get("type") == "subscribed":
                        return
                    if message.get("type") == "error":
                        raise TournamentError(f"the relay refused: {message.get('text')}")
                    self._take(message)

    async def _notify_on_stop(self) -> None:
        await self.stop.wait()
        async with self.changed:
            self.changed.notify_all()

    def _take(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind == "round_started":
            self.started.append(msgspec.convert(message, RoundStarted))
            return True
        if kind == "leaderboard":
            self.latest = msgspec.convert(message, Leaderboard)
            self.boards += 1
            return True
        return False

    async def _read(self, ws: ClientConnection) -> None:
        delay = RETRY_S
        while True:
            try:
                async for frame in ws:
                    taken = [self._take(m) for m in _messages(frame)]
                    if any(taken):
                        async with self.changed:
                            self.changed.notify_all()
                    delay = RETRY_S
            except (ConnectionClosed, OSError):
                pass
            while True:  # the relay went away: reconnect (what it repeats covers the gap)
                await asyncio.sleep(delay)  # backoff between reconnection attempts
                delay = min(delay * 2, 2.0)
                try:
                    ws = await _connect(self.url)
                    await self._subscribe(ws)
                    break
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                    continue

    async def close(self) -> None:
        for task in (self._task, self._wake):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def started_since(self, index: int, name: str) -> RoundStarted | None:
        """A ``round_started`` named ``name`` among those seen after the first ``index``."""
        for started in self.started[index:]:
            if started.name == name:
                return started
        return None

    async def final_board(self, venue_round: int, after: int, timeout: float) -> Leaderboard:
        """The first leaderboard of ``venue_round`` received after the first ``after``
        leaderboards. Raises RoundFailed after ``timeout`` s, Interrupted on stop."""

        def ready() -> bool:
            latest = self.latest
            return self.boards > after and latest is not None and latest.round == venue_round

        if not await _until(self.stop, self.changed, ready, timeout):
            raise RoundFailed(
                f"no leaderboard of round {venue_round} from the relay within {timeout:g} s"
            )
        assert self.latest is not None
        return self.latest


class OperatorSession:
    """An operator's gateway session; messages are read by a task into ``inbox``."""

    def __init__(self, url: str, api_key: str, stop: asyncio.Event) -> None:
        self.url = url
        self.api_key = api_key
        self.stop = stop
        self.changed = asyncio.Condition()
        self.answers: dict[str, dict[str, Any]] = {}
        """Direct answers by ``req_id``."""
        self.rounds: list[RoundStarted] = []
        """Every ``round_started`` this session was sent."""
        self.closed = False
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and log in. Raises TournamentError: no gateway, a refused key, or a key
        that is not an operator's (its requests would be ``forbidden``)."""
        try:
            await self._login()
        except (OSError, TimeoutError, InvalidURI, InvalidHandshake, ConnectionClosed) as exc:
            raise TournamentError(f"cannot reach the gateway at {self.url}: {exc}") from None

    async def _login(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOGIN_TIMEOUT_S
        while True:
            ws = await _connect(self.url)
            await ws.send(encode(Login(api_key=self.api_key, req_id="login")), text=True)
            reply = await self._login_reply(ws, deadline - loop.time())
            if reply.get("type") == "logged_in":
                break
            await ws.close()
            code = reply.get("code")
            if code == "engine_unavailable" and loop.time() < deadline:
                await asyncio.sleep(RETRY_S)  # the gateway cannot ask the engine yet
                continue
            if code == "auth_failed":
                raise TournamentError("the gateway refused the API key (auth_failed)")
            raise TournamentError(f"login failed: {code}: {reply.get('text')}")
        if not reply.get("admin"):
            await ws.close()
            raise TournamentError(
                f"forbidden: the API key logs in as account {reply.get('account')!r}, not as "
                "an operator (the config's [admin] api_keys)"
            )
        self._ws = ws
        self.closed = False
        self._task = asyncio.create_task(self._read(ws))

    @staticmethod
    async def _login_reply(ws: ClientConnection, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(max(timeout, 0.1)):
            while True:
                for message in _messages(await ws.recv(decode=False)):
                    if message.get("type") in ("logged_in", "error"):
                        return message

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                async with self.changed:
                    for message in _messages(frame):
                        req_id = message.get("req_id")
                        if isinstance(req_id, str):
                            self.answers[req_id] = message
                        if message.get("type") == "round_started":
                            self.rounds.append(msgspec.convert(message, RoundStarted))
                    self.changed.notify_all()
        except (ConnectionClosed, OSError):
            pass
        async with self.changed:
            self.closed = True
            self.changed.notify_all()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def start_round(self, name: str, cash: float, feed: RoundsFeed) -> RoundStarted:
        """Start round ``name`` with ``cash``; its ``round_started``. Raises RoundFailed when
        the venue does not start it within START_TIMEOUT_S, Interrupted on stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        seen = len(feed.started)
        attempt = 0
        while True:
            attempt += 1
            req_id = f"{name}#{attempt}"
            reply = await self._request(StartRound(name=name, cash=cash, req_id=req_id), req_id)
            if reply is not None and reply.get("type") == "round_started":
                return msgspec.convert(reply, RoundStarted)
            if reply is not None and reply.get("code") not in (None, "engine_unavailable"):
                raise RoundFailed(f"start_round refused: {reply.get('code')}: {reply.get('text')}")
            # No answer, or engine_unavailable: the engine may still have started it.
            mine = feed.started_since(seen, name)
            if mine is None:
                await _until(
                    self.stop, feed.changed, lambda: feed.started_since(seen, name) is not None, 1.0
                )
                mine = feed.started_since(seen, name)
            if mine is not None:
                return mine
            if loop.time() > deadline:
                raise RoundFailed(f"the venue did not start {name} within {START_TIMEOUT_S:g} s")
            if self.closed:
                with contextlib.suppress(
                    TournamentError, OSError, TimeoutError, InvalidHandshake, ConnectionClosed
                ):
                    await self.close()
                    await self._login()
            await asyncio.sleep(RETRY_S)  # backoff before asking again

    async def _request(self, request: StartRound, req_id: str) -> dict[str, Any] | None:
        """Send ``request``; its direct answer (``round_started`` or ``error`` echoing
        ``req_id``), or None when the connection dropped or nothing came in 10 s."""
        if self.closed or self._ws is None:
            return None
        mark = len(self.rounds)
        try:
            await self._ws.send(encode(request), text=True)
        except (ConnectionClosed, OSError):
            return None

        def answer() -> dict[str, Any] | None:
            direct = self.answers.pop(req_id, None)
            if direct is not None:
                return direct
            for started in self.rounds[mark:]:  # in case the copy does not echo req_id
                if started.name == request.name:
                    return dict(msgspec.to_builtins(started))
            return None

        found: list[dict[str, Any]] = []

        def ready() -> bool:
            if not found:
                message = answer()
                if message is not None:
                    found.append(message)
            return bool(found) or self.closed

        await _until(self.stop, self.changed, ready, 10.0)
        return found[0] if found else None


async def play_rounds(
    session: OperatorSession,
    feed: RoundsFeed,
    *,
    rounds: int,
    seconds: float,
    cash: float,
    on_round: Callable[[RoundSpan], None],
    on_progress: Callable[[int, float], None] | None = None,
) -> list[RoundSpan]:
    """Play ``rounds`` rounds of ``seconds`` each; returns the completed ones (also given to
    ``on_round`` as each ends). Raises RoundFailed / Interrupted (the rounds completed so far
    have been given to ``on_round``)."""
    loop = asyncio.get_running_loop()
    spans: list[RoundSpan] = []
    for index in range(1, rounds + 1):
        if session.stop.is_set():
            raise Interrupted
        name = f"round-{index}"
        started = await session.start_round(name, cash, feed)
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            if on_progress is not None:
                on_progress(index, 1 - left / seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.stop.wait(), min(left, 0.25))
            if session.stop.is_set():
                raise Interrupted
        board = await feed.final_board(started.round, feed.boards, FINAL_TIMEOUT_S)
        span = RoundSpan(
            index=index,
            venue_round=started.round,
            name=name,
            cash=started.cash,
            start_seq=started.seq,
            start_ns=started.ts,
            end_seq=board.seq,
            end_ns=max(board.ts, started.ts),
            final=board,
        )
        spans.append(span)
        on_round(span)
    return spans
