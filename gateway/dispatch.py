"""What the gateway does with each client message (no sockets: the engine is reached through
the ``EngineRequests`` interface, clients through their sessions' ``deliver``).

``Dispatcher.handle(session, message)`` takes one decoded message (or the ``Error`` describing
an invalid one) and answers it in the session's reply order:

- invalid -> ``error`` ``invalid_message`` (counted by the session's flood guard);
- ``ping`` -> ``pong``, at any time;
- ``login`` / ``register`` -> asks the engine; returns an awaitable that the connection must
  wait for before handling the next message (later messages depend on the outcome);
- anything else before login -> ``error`` ``not_logged_in``;
- a ``qty`` or ``price`` out of the representable range (``exchange.protocol.bounds``) ->
  ``rejected`` / ``cancel_reject`` ``invalid_qty`` / ``invalid_price``, never sent on;
- engine link down -> ``engine_unavailable`` at once; account out of tokens -> ``rate_limited``
  with ``retry_after_ms`` (``replies.rejection`` picks the shape);
- else the request goes to the engine (``Submit`` for order commands, ``Query`` for
  ``get_account``/``get_orders``) and its reply is routed by ``routing.Router``. If the link
  drops first, the request is answered ``engine_unavailable``: never left unanswered.

``disconnect(session)`` forgets the session and, with ``cancel_on_disconnect``, cancels the
account's orders (retried after the link comes back if it is down). When the gateway stops,
``cancel_on_stop()`` sends those cancels before the sessions close, and ``refuse_stopping``
answers the new orders and amends that arrive meanwhile (cancel-only).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from exchange.protocol.bounds import order_problem
from exchange.protocol.codec import encode, login_answer_decoder
from exchange.protocol.internal import Authenticate, Operate, Query, RegisterAccount, Submit
from exchange.protocol.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Error,
    GetAccount,
    GetOrder,
    GetOrders,
    Limits,
    LoggedIn,
    Login,
    NewOrder,
    Ping,
    Pong,
    PublishNews,
    Register,
    Registered,
    SetStatus,
    StartRound,
)
from exchange.protocol.replies import error_about, ref_of, rejection
from gateway.metrics import GatewayStats
from gateway.ratelimit import RateLimiter
from gateway.routing import Router
from gateway.sessions import Session, SessionRegistry, Slot

UNAVAILABLE_TEXT = "the engine is unavailable; try again shortly"
STOPPING_TEXT = "the gateway is shutting down: only cancels are accepted"


class Pending(Protocol):
    """A request waiting for the engine."""

    def envelope(self, envelope_id: int) -> Any:
        """The envelope to send, with the id the link chose."""
        ...

    def on_reply(self, messages: list[msgspec.Raw]) -> None: ...

    def on_unavailable(self) -> None:
        """The link is down (or dropped before the reply came): answer without the engine."""
        ...


class EngineRequests(Protocol):
    """The engine link as the dispatcher uses it."""

    @property
    def up(self) -> bool: ...

    def request(self, pending: Pending) -> None:
        """Send ``pending.envelope(id)``; later call exactly one of its ``on_*`` methods
        (``on_unavailable`` at once when the link is down)."""
        ...


class Dispatcher:
    """Per-gateway request handling; one instance serves every session."""

    def __init__(
        self,
        link: EngineRequests,
        registry: SessionRegistry,
        stats: GatewayStats,
        *,
        wall_clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.registry = registry
        self.router = Router(registry)
        self.limiter = RateLimiter()
        self.stats = stats
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self._cancels_owed: set[str] = set()

    # ------------------------------------------------------------------ client messages

    def handle(self, session: Session, message: Any) -> Awaitable[None] | None:
        """Handle one message of ``session``; returns an awaitable for login/register."""
        kind = type(message)
        stats = self.stats
        if kind is Error:
            self.invalid(session, message)
            return None
        stats.requests[_NAMES.get(kind, "other")] += 1
        if kind is Ping:
            session.replies.ready([encode(Pong(ts=self.wall_clock(), req_id=message.req_id))])
            return None
        if kind is Login or kind is Register:
            return self._log_in(session, message)
        account = session.account
        if account is None:
            if session.admin:
                self._operate(session, message)
                return None
            stats.rejected["not_logged_in"] += 1
            text = "log in first: login message or Authorization: Bearer header"
            session.replies.ready([error_about("not_logged_in", text, message)])
            return None
        if kind in _OPERATOR:
            stats.rejected["forbidden"] += 1
            text = f"{_NAMES[kind]} is for operator sessions (an [admin] api key) only"
            session.replies.ready([error_about("forbidden", text, message)])
            return None
        if kind is NewOrder or kind is AmendOrder:
            problem = order_problem(message.qty, message.price, message.trigger_price)
            if problem is not None:  # numbers nothing downstream can represent: never sent on
                reason, text = problem
                stats.rejected[reason] += 1
                reply = rejection(message, account, reason, text, self.wall_clock())
                session.replies.ready([reply])
                return None
        if not self.link.up:
            stats.rejected["engine_unavailable"] += 1
            reply = rejection(
                message, account, "engine_unavailable", UNAVAILABLE_TEXT, self.wall_clock()
            )
            session.replies.ready([reply])
            return None
        limits = session.limits
        assert limits is not None
        wait_ms = self.limiter.take(
            account, limits.orders_per_second, limits.burst, self.monotonic()
        )
        if wait_ms:
            stats.rejected["rate_limited"] += 1
            text = (
                f"more than {limits.orders_per_second:g} requests per second (burst {limits.burst})"
            )
            reply = rejection(message, account, "rate_limited", text, self.wall_clock(), wait_ms)
            session.replies.ready([reply])
            return None
        self.link.request(_Request(self, session, session.replies.reserve(), message, account))
        return None

    def _operate(self, session: Session, message: Any) -> None:
        """A request of an operator session: operator commands go to the engine; anything
        that needs an account (orders, queries) is ``forbidden``."""
        stats = self.stats
        if type(message) not in _OPERATOR:
            stats.rejected["forbidden"] += 1
            text = "an operator session has no account: it cannot trade or query one"
            session.replies.ready([error_about("forbidden", text, message)])
            return
        if not self.link.up:
            stats.rejected["engine_unavailable"] += 1
            session.replies.ready([error_about("engine_unavailable", UNAVAILABLE_TEXT, message)])
            return
        self.link.request(_Operate(self, session, session.replies.reserve(), message))

    def invalid(self, session: Session, problem: Error) -> None:
        """Answer an invalid message and count it against the session's flood guard."""
        self.stats.requests["invalid"] += 1
        session.replies.ready([encode(problem)])
        if session.flood.hit(self.monotonic()):
            session.flooded = True

    # ------------------------------------------------------------------ login

    def _log_in(self, session: Session, message: Login | Register) -> Awaitable[None] | None:
        if session.logged_in:
            text = (
                f"already logged in as {session.account!r}"
                if session.account is not None
                else "already logged in as an operator"
            )
            session.replies.ready([error_about("already_logged_in", text, message)])
            return None
        if not self.link.up:
            self.stats.rejected["engine_unavailable"] += 1
            session.replies.ready([error_about("engine_unavailable", UNAVAILABLE_TEXT, message)])
            return None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.link.request(_LogIn(self, session, session.replies.reserve(), message, done))
        return done

    def authenticate(self, api_key: str) -> asyncio.Future[LoggedIn | Error]:
        """Ask the engine which account ``api_key`` logs into (for header authentication).

        The future resolves to ``LoggedIn`` or an ``Error`` (``auth_failed`` or
        ``engine_unavailable``); it never fails.
        """
        done: asyncio.Future[LoggedIn | Error] = asyncio.get_running_loop().create_future()
        self.link.request(_Authenticate(api_key, done))
        return done

    def log_in(
        self,
        session: Session,
        account: str | None,
        limits: Limits | None,
        cancel_on_disconnect: bool,
        admin: bool = False,
    ) -> None:
        """Mark ``session`` logged in as ``account`` (with its ``limits``), or as an operator
        (``admin``), and route the account's events, and the broadcasts, to it."""
        session.log_in(account, limits, cancel_on_disconnect, admin)
        self.registry.add(session)

    # ------------------------------------------------------------------ engine side

    def on_push(self, events: list[msgspec.Raw]) -> None:
        """Private events the engine pushed (caused elsewhere)."""
        self.router.push(events)

    def on_link_up(self) -> None:
        """The link (re)connected: send the cancel-on-disconnect cancels still owed."""
        owed = self._cancels_owed
        self._cancels_owed = set()
        for account in sorted(owed):
            self.link.request(_CancelOnDisconnect(self, account))

    def disconnect(self, session: Session) -> None:
        """The session's connection is gone: forget it; cancel its account's orders if it
        asked for that."""
        session.closed = True
        self.registry.remove(session)
        if session.cancel_on_disconnect and session.account is not None:
            self.link.request(_CancelOnDisconnect(self, session.account))

    def owe_cancel(self, account: str) -> None:
        self._cancels_owed.add(account)

    @property
    def cancels_owed(self) -> set[str]:
        return set(self._cancels_owed)

    # ------------------------------------------------------------------ stopping

    def cancel_on_stop(self) -> list[str]:
        """The gateway is stopping: send now, while the link is up, the cancels that closing
        the sessions would send (one ``cancel_all`` per account with a cancel-on-disconnect
        session, plus any still owed). The sessions stay open to receive the reports and do
        not cancel again when they close. Returns the accounts, sorted."""
        accounts = set(self._cancels_owed)
        self._cancels_owed = set()
        for account in self.registry.accounts():
            for session in self.registry.of(account):
                if session.cancel_on_disconnect:
                    session.cancel_on_disconnect = False
                    accounts.add(account)
        for account in sorted(accounts):
            self.link.request(_CancelOnDisconnect(self, account))
        return sorted(accounts)

    def refuse_stopping(self, session: Session, message: NewOrder | AmendOrder) -> None:
        """While the gateway stops it is cancel-only: a logged-in session's ``new_order`` or
        ``amend_order`` is refused ``engine_unavailable`` without reaching the engine."""
        account = session.account
        assert account is not None
        stats = self.stats
        stats.requests[_NAMES[type(message)]] += 1
        stats.rejected["engine_unavailable"] += 1
        reply = rejection(message, account, "engine_unavailable", STOPPING_TEXT, self.wall_clock())
        session.replies.ready([reply])


_NAMES: dict[type, str] = {
    cls: str(cls.__struct_config__.tag)
    for cls in (
        Login,
        Register,
        NewOrder,
        CancelOrder,
        AmendOrder,
        CancelAll,
        GetAccount,
        GetOrders,
        GetOrder,
        Ping,
        PublishNews,
        StartRound,
        SetStatus,
    )
}
"""Metric label of each request type: its wire ``type``."""

_OPERATOR = frozenset({PublishNews, StartRound, SetStatus})
"""Requests only an operator session may send (PROTOCOL §3.3)."""


_QUERIES = frozenset({GetAccount, GetOrders, GetOrder})
"""Read-only requests: sent as a ``Query`` envelope (the rest as ``Submit``)."""

# ---------------------------------------------------------------------- pending requests


class _Request:
    """An order command or query in flight for a logged-in session."""

    __slots__ = ("account", "dispatcher", "message", "session", "slot")

    def __init__(
        self, dispatcher: Dispatcher, session: Session, slot: Slot, message: Any, account: str
    ) -> None:
        self.dispatcher = dispatcher
        self.session = session
        self.slot = slot
        self.message = message
        self.account = account

    def envelope(self, envelope_id: int) -> Any:
        message = self.message
        if type(message) in _QUERIES:
            return Query(id=envelope_id, account=self.account, request=message)
        return Submit(id=envelope_id, account=self.account, command=message)

    def on_reply(self, messages: list[msgspec.Raw]) -> None:
        session = self.session
        direct = self.dispatcher.router.reply(session, messages)
        session.replies.fill(self.slot, direct)

    def on_unavailable(self) -> None:
        dispatcher = self.dispatcher
        dispatcher.stats.rejected["engine_unavailable"] += 1
        reply = rejection(
            self.message,
            self.account,
            "engine_unavailable",
            UNAVAILABLE_TEXT,
            dispatcher.wall_clock(),
        )
        self.session.replies.fill(self.slot, [reply])


class _Operate:
    """An operator command in flight; its reply (the broadcast and what a round did) is
    routed like any other."""

    __slots__ = ("dispatcher", "message", "session", "slot")

    def __init__(self, dispatcher: Dispatcher, session: Session, slot: Slot, message: Any) -> None:
        self.dispatcher = dispatcher
        self.session = session
        self.slot = slot
        self.message = message

    def envelope(self, envelope_id: int) -> Any:
        return Operate(id=envelope_id, command=self.message)

    def on_reply(self, messages: list[msgspec.Raw]) -> None:
        self.session.replies.fill(self.slot, self.dispatcher.router.reply(self.session, messages))

    def on_unavailable(self) -> None:
        self.dispatcher.stats.rejected["engine_unavailable"] += 1
        reply = error_about("engine_unavailable", UNAVAILABLE_TEXT, self.message)
        self.session.replies.fill(self.slot, [reply])


class _LogIn:
    """A ``login`` or ``register`` in flight; the session waits for it."""

    __slots__ = ("dispatcher", "done", "message", "session", "slot")

    def __init__(
        self,
        dispatcher: Dispatcher,
        session: Session,
        slot: Slot,
        message: Login | Register,
        done: asyncio.Future[None],
    ) -> None:
        self.dispatcher = dispatcher
        self.session = session
        self.slot = slot
        self.message = message
        self.done = done

    def envelope(self, envelope_id: int) -> Any:
        message = self.message
        if isinstance(message, Login):
            return Authenticate(id=envelope_id, api_key=message.api_key)
        return RegisterAccount(
            id=envelope_id, account=message.account, cash=message.cash, req_id=message.req_id
        )

    def on_reply(self, messages: list[msgspec.Raw]) -> None:
        session = self.session
        message = self.message
        dispatcher = self.dispatcher
        answer = login_answer_decoder.decode(messages[0]) if messages else None
        direct: list[bytes]
        if type(answer) is LoggedIn and type(message) is Login:
            if not session.closed:
                dispatcher.log_in(
                    session,
                    answer.account,
                    answer.limits,
                    message.cancel_on_disconnect,
                    answer.admin,
                )
            direct = [encode(msgspec.structs.replace(answer, req_id=message.req_id))]
        elif type(answer) is Registered:
            if not session.closed:
                dispatcher.log_in(session, answer.account, answer.limits, False)
            direct = [bytes(messages[0]), *dispatcher.router.reply(session, messages[1:])]
        elif type(answer) is Error:
            if answer.code == "auth_failed":
                dispatcher.stats.rejected["auth_failed"] += 1
            direct = [
                encode(msgspec.structs.replace(answer, ref=ref_of(message), req_id=message.req_id))
            ]
        else:
            text = "unexpected answer from the engine"
            direct = [error_about("internal_error", text, message)]
        session.replies.fill(self.slot, direct)
        if not self.done.done():
            self.done.set_result(None)

    def on_unavailable(self) -> None:
        self.dispatcher.stats.rejected["engine_unavailable"] += 1
        reply = error_about("engine_unavailable", UNAVAILABLE_TEXT, self.message)
        self.session.replies.fill(self.slot, [reply])
        if not self.done.done():
            self.done.set_result(None)


class _Authenticate:
    """Header authentication during the handshake: no session yet."""

    __slots__ = ("api_key", "done")

    def __init__(self, api_key: str, done: asyncio.Future[LoggedIn | Error]) -> None:
        self.api_key = api_key
        self.done = done

    def envelope(self, envelope_id: int) -> Any:
        return Authenticate(id=envelope_id, api_key=self.api_key)

    def on_reply(self, messages: list[msgspec.Raw]) -> None:
        answer = login_answer_decoder.decode(messages[0]) if messages else None
        if type(answer) is not LoggedIn and type(answer) is not Error:
            answer = Error(code="internal_error", text="unexpected answer from the engine")
        if not self.done.done():
            self.done.set_result(answer)

    def on_unavailable(self) -> None:
        if not self.done.done():
            self.done.set_result(Error(code="engine_unavailable", text=UNAVAILABLE_TEXT))


class _CancelOnDisconnect:
    """``cancel_all`` for an account whose cancel-on-disconnect session closed."""

    __slots__ = ("account", "dispatcher")

    def __init__(self, dispatcher: Dispatcher, account: str) -> None:
        self.dispatcher = dispatcher
        self.account = account

    def envelope(self, envelope_id: int) -> Any:
        return Submit(id=envelope_id, account=self.account, command=CancelAll())

    def on_reply(self, messages: list[msgspec.Raw]) -> None:
        self.dispatcher.router.reply(None, messages)  # reports reach the other sessions

    def on_unavailable(self) -> None:
        self.dispatcher.owe_cancel(self.account)
