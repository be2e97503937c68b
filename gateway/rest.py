"""REST order entry on the gateway's ``--rest-port`` (PROTOCOL §6): HTTP/1.1 JSON.

Every request goes through the same ``Dispatcher.handle`` as a WebSocket message, for a
short-lived ``RestSession`` of the caller's account: the same checks (``bounds``), the same
per-account token bucket (shared with the account's WebSocket sessions), the same engine
request and routing. The session is never registered, so the reports a request causes reach
the account's WebSocket sessions as copies (the router's rule for "another session of the
account"), and later reports (fills of a resting order) go to those sessions only.

HTTP is parsed with h11 (sans-I/O) over asyncio streams, in the gateway's own event loop.
A client cannot stall or crash the gateway: headers are bounded (``MAX_HEADER_BYTES``: 431,
h11's answer), bodies are bounded (``MAX_BODY_BYTES``: 413, the rest discarded and the
connection closed), each request must arrive within ``REQUEST_TIMEOUT`` seconds, an idle
keep-alive connection is closed after ``IDLE_TIMEOUT``, and at most ``MAX_CONNECTIONS`` are
open at once (more are closed at once). ``/healthz`` and ``/metrics`` answer here too.

API keys are checked with the engine (``Authenticate``) and the answer is cached for
``AUTH_CACHE_SECONDS``, so a POST while the engine is down is still answered as §6 says (an
``order_result`` with the ``rejected`` ``engine_unavailable`` report) for a recently seen key.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from exchange.protocol.codec import (
    amend_body_decoder,
    encode,
    http_error_body,
    new_order_body_decoder,
    rest_reply_decoder,
    too_deep,
)
from exchange.protocol.messages import (
    AmendOrder,
    CancelAll,
    CancelAllDone,
    CancelOrder,
    CancelReject,
    Error,
    ErrorCode,
    ExecutionReport,
    GetAccount,
    GetOrder,
    GetOrders,
    Limits,
    LoggedIn,
    NewOrder,
)
from exchange.protocol.replies import error
from exchange.protocol.rest import API_PREFIX, MAX_BODY_BYTES, openapi
from gateway.dispatch import Dispatcher
from gateway.sessions import ReplyQueue, Session, Slot

log = structlog.get_logger("gateway.rest")

MAX_HEADER_BYTES = 16 * 1024
REQUEST_TIMEOUT = 10.0
"""Seconds a request (its headers and body) may take to arrive once it has begun."""
IDLE_TIMEOUT = 30.0
"""Seconds a keep-alive connection may wait for its next request."""
ENGINE_TIMEOUT = 10.0
"""A last resort: the dispatcher always answers, but a reply never waits longer than this."""
MAX_CONNECTIONS = 1024
DISCARD_BYTES = 1024 * 1024
DISCARD_SECONDS = 1.0
AUTH_CACHE_SECONDS = 30.0
AUTH_CACHE_SIZE = 10_000

ORDERS = f"{API_PREFIX}/orders"
ORDER_PREFIX = f"{ORDERS}/"
ACCOUNT = f"{API_PREFIX}/account"
OPENAPI = f"{API_PREFIX}/openapi.json"
_METHODS = {
    ORDERS: ("GET", "POST", "DELETE"),
    ACCOUNT: ("GET",),
    OPENAPI: ("GET",),
    "/healthz": ("GET",),
    "/metrics": ("GET",),
}
_ORDER_METHODS = ("GET", "DELETE", "PATCH")
_JSON = "application/json"

Answer = tuple[int, bytes, list[tuple[str, str]]]
"""(status, JSON body, extra headers)."""


class _Collect(ReplyQueue):
    """A REST session's reply queue: collects the direct replies; ``done`` resolves when no
    reply is pending any more."""

    __slots__ = ("done",)

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        super().__init__(deliver)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fill(self, slot: Slot, messages: list[bytes]) -> None:
        super().fill(slot, messages)
        if not len(self) and not self.done.done():
            self.done.set_result(None)


class RestSession(Session):
    """One REST request's session: logged in as the key's account, never registered."""

    __slots__ = ("collected",)

    def __init__(self, account: str, limits: Limits) -> None:
        self.collected: list[bytes] = []
        super().__init__(self.collected.append)
        self.replies = _Collect(self.collected.append)
        self.log_in(account, limits, False)

    async def answers(self) -> list[bytes]:
        """The direct replies, once all are in."""
        replies = self.replies
        assert isinstance(replies, _Collect)
        if len(replies):
            await asyncio.wait_for(asyncio.shield(replies.done), ENGINE_TIMEOUT)
        return self.collected


def _error(status: int, code: ErrorCode, text: str) -> Answer:
    return status, http_error_body(code, text), []


class RestServer:
    """The REST port of one gateway."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        ready: Callable[[], bool],
        metrics: CollectorRegistry,
        stopping: Callable[[], bool],
    ) -> None:
        self.dispatcher = dispatcher
        self._ready = ready
        self._metrics = metrics
        self._stopping = stopping
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._auth: dict[str, tuple[float, LoggedIn]] = {}
        self._openapi = msgspec.json.encode(openapi())
        self.port = 0
        self.requests = 0

    @property
    def connections(self) -> int:
        """Open REST connections."""
        return len(self._connections)

    async def start(self, host: str, port: int) -> None:
        """Bind ``host:port`` (0: a free port, then in ``self.port``). Raises OSError."""
        self._server = await asyncio.start_server(self._connection, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, end every open connection. Never raises."""
        server = self._server
        self._server = None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)

    # ------------------------------------------------------------------ HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError, TimeoutError, h11.ProtocolError):
            pass
        except Exception:  # a bug: log it, never take the gateway down
            log.exception("rest_connection_failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)

        async def next_event(deadline: float) -> Any:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    raise
                if event is not h11.NEED_DATA:
                    return event
                if conn.they_are_waiting_for_100_continue:
                    go_on = h11.InformationalResponse(status_code=100, headers=[])
                    writer.write(conn.send(go_on) or b"")
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError
                data = await asyncio.wait_for(reader.read(65536), timeout)
                conn.receive_data(data)

        async def send(
            status: int, body: bytes, headers: list[tuple[str, str]], ctype: str
        ) -> None:
            head = [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers]
            writer.write(conn.send(h11.Response(status_code=status, headers=head)) or b"")
            writer.write(conn.send(h11.Data(data=body)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)

        first = True
        while True:
            try:
                event = await next_event(
                    time.monotonic() + (REQUEST_TIMEOUT if first else IDLE_TIMEOUT)
                )
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    body = http_error_body("invalid_message", f"bad HTTP request: {exc}")
                    await send(status, body, [("Connection", "close")], _JSON)
                    await _discard(reader)
                return
            first = False
            if type(event) is h11.ConnectionClosed:
                return
            if type(event) is not h11.Request:
                return
            deadline = time.monotonic() + REQUEST_TIMEOUT
            length = _content_length(event.headers)
            received = bytearray()
            too_large = length is not None and length > MAX_BODY_BYTES
            while not too_large:
                part = await next_event(deadline)
                if type(part) is h11.Data:
                    received += part.data
                    too_large = len(received) > MAX_BODY_BYTES
                elif type(part) is h11.EndOfMessage:
                    break
                else:
                    return
            if too_large:  # answer and close: the rest of the body is never read
                text = f"request body over {MAX_BODY_BYTES} bytes"
                body413 = http_error_body("payload_too_large", text)
                await send(413, body413, [("Connection", "close")], _JSON)
                await _discard(reader)  # so that closing does not reset the answer away
                return
            self.requests += 1
            target = event.target.decode("latin-1")
            method = event.method.decode("ascii", "replace").upper()
            authorization = _header(event.headers, b"authorization")
            status, payload, headers, ctype = await self.answer(
                method, target, authorization, bytes(received)
            )
            await send(status, payload, headers, ctype)
            if conn.our_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    # ------------------------------------------------------------------ routing

    async def answer(
        self, method: str, target: str, authorization: str | None, body: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]], str]:
        """Status, body, extra headers and content type for one request. Never raises."""
        parts = urlsplit(target)
        path = parts.path
        order_id: str | None = None
        if path in _METHODS:
            allowed = _METHODS[path]
        elif path.startswith(ORDER_PREFIX) and "/" not in path[len(ORDER_PREFIX) :]:
            allowed = _ORDER_METHODS
            order_id = path[len(ORDER_PREFIX) :]
        else:
            return 404, http_error_body("not_found", "no such path"), [], _JSON
        if method not in allowed:
            text = f"{method} is not allowed here; allowed: {', '.join(allowed)}"
            allow = [("Allow", ", ".join(allowed))]
            return 405, http_error_body("method_not_allowed", text), allow, _JSON
        if path == "/healthz":
            ok = self._ready()
            return (
                (200, b'{"status":"ok"}', [], _JSON)
                if ok
                else (503, b'{"status":"starting"}', [], _JSON)
            )
        if path == "/metrics":
            return 200, generate_latest(self._metrics), [], CONTENT_TYPE_LATEST
        if path == OPENAPI:
            return 200, self._openapi, [], _JSON
        try:
            status, payload, headers = await self._api(
                method, path, order_id, parse_qs(parts.query), authorization, body
            )
        except Exception:  # a bug: answered, logged, the gateway carries on
            log.exception("rest_request_failed", method=method, path=path)
            status, payload, headers = _error(500, "internal_error", "internal error")
        return status, payload, headers, _JSON

    async def _api(
        self,
        method: str,
        path: str,
        order_id_text: str | None,
        query: dict[str, list[str]],
        authorization: str | None,
        body: bytes,
    ) -> Answer:
        login = await self._authenticate(authorization)
        if not isinstance(login, LoggedIn):
            return login
        if login.account is None or login.limits is None:
            text = "an operator key has no account: REST order entry needs an account's key"
            return _error(403, "forbidden", text)
        message: Any
        known = _QUERY_PARAMS[(method, order_id_text is not None)]
        unknown = sorted(set(query) - known)
        if unknown:
            return _error(400, "invalid_message", f"unknown query parameter {unknown[0]!r}")
        params = {name: values[-1] for name, values in query.items()}
        order_id: int | None = None
        if order_id_text is not None:
            if not order_id_text.isdigit() or int(order_id_text) > 2**63 - 1:
                return _error(404, "unknown_order", f"no order {order_id_text!r}")
            order_id = int(order_id_text)
        if method in ("GET", "DELETE") and body.strip():
            return _error(400, "invalid_message", f"{method} takes no body")
        if path == ACCOUNT:
            message = GetAccount()
        elif method == "POST":
            decoded = _decode(new_order_body_decoder, body)
            if isinstance(decoded, Error):
                return 400, encode(decoded), []
            message = decoded
        elif method == "PATCH":
            amend = _decode(amend_body_decoder, body)
            if isinstance(amend, Error):
                return 400, encode(amend), []
            message = AmendOrder(
                order_id=order_id,
                qty=amend.qty,
                price=amend.price,
                trigger_price=amend.trigger_price,
                req_id=amend.req_id,
            )
        elif method == "GET":
            message = (
                GetOrders(symbol=params.get("symbol"))
                if order_id is None
                else GetOrder(order_id=order_id)
            )
        elif order_id is not None:
            message = CancelOrder(order_id=order_id)
        elif "client_order_id" in params:
            message = CancelOrder(client_order_id=params["client_order_id"])
        else:
            message = CancelAll(symbol=params.get("symbol"))
        session = RestSession(login.account, login.limits)
        if self._stopping() and isinstance(message, (NewOrder, AmendOrder)):
            self.dispatcher.refuse_stopping(session, message)
        else:
            waiter = self.dispatcher.handle(session, message)
            assert waiter is None  # only login/register wait, and REST sends neither
        try:
            replies = await session.answers()
        except TimeoutError:
            return _error(503, "engine_unavailable", "the engine did not answer in time")
        return _result(message, replies)

    async def _authenticate(self, authorization: str | None) -> LoggedIn | Answer:
        if authorization is None:
            return _error(401, "unauthorized", "expected Authorization: Bearer <api_key>")
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return _error(401, "unauthorized", "expected Authorization: Bearer <api_key>")
        now = time.monotonic()
        cached = self._auth.get(key)
        if cached is not None and now - cached[0] < AUTH_CACHE_SECONDS:
            return cached[1]
        answer = await self.dispatcher.authenticate(key)
        if isinstance(answer, LoggedIn):
            if len(self._auth) >= AUTH_CACHE_SIZE:
                self._auth.clear()
            self._auth[key] = (now, answer)
            return answer
        if cached is not None and answer.code == "engine_unavailable":
            return cached[1]  # known key, engine down: the request is answered 503 below
        if answer.code == "auth_failed":
            self.dispatcher.stats.rejected["unauthorized"] += 1
            return _error(401, "unauthorized", "unknown API key")
        return _error(503, answer.code, answer.text)


_QUERY_PARAMS: dict[tuple[str, bool], frozenset[str]] = {
    ("GET", False): frozenset({"symbol"}),
    ("POST", False): frozenset(),
    ("DELETE", False): frozenset({"symbol", "client_order_id"}),
    ("GET", True): frozenset(),
    ("DELETE", True): frozenset(),
    ("PATCH", True): frozenset(),
}


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read and drop what the client is still sending (at most ``DISCARD_BYTES``, for at most
    ``DISCARD_SECONDS``): closing a socket with unread input would reset the connection and
    could destroy the answer just sent. Never raises."""
    left = DISCARD_BYTES
    deadline = time.monotonic() + DISCARD_SECONDS
    with contextlib.suppress(Exception):
        while left > 0:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                return
            left -= len(data)


def _content_length(headers: Any) -> int | None:
    value = _header(headers, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:  # h11 lower-cases names
            return value.decode("latin-1")
    return None


def _decode(decoder: Any, body: bytes) -> Any:
    if not body.strip():
        return Error(code="invalid_message", text="a JSON body is required", ref=None)
    if too_deep(body):
        return Error(code="invalid_message", text="JSON nested too deep", ref=None)
    return decoder.decode_one(body)


_STATUS_OF_CODE: dict[str, int] = {
    "invalid_message": 400,
    "unknown_order": 404,
    "forbidden": 403,
    "rate_limited": 429,
    "engine_unavailable": 503,
}
_STATUS_OF_REASON: dict[str, int] = {
    "unknown_order": 404,
    "too_late": 409,
    "rate_limited": 429,
    "engine_unavailable": 503,
}


def _retry_after(ms: int | None) -> list[tuple[str, str]]:
    return [("Retry-After", str(max(1, math.ceil(ms / 1000))))] if ms else []


def _result(request: Any, replies: list[bytes]) -> Answer:
    """The HTTP answer to ``request`` from its direct replies (PROTOCOL §6)."""
    reports: list[bytes] = []
    for raw in replies:
        message = rest_reply_decoder.decode(raw)
        kind = type(message)
        if kind is ExecutionReport:
            reports.append(raw)
        elif kind is Error:
            assert isinstance(message, Error)
            status = _STATUS_OF_CODE.get(message.code, 500)
            return status, raw, _retry_after(message.retry_after_ms)
        elif kind is CancelReject:
            assert isinstance(message, CancelReject)
            reason = message.reject_reason
            status = _STATUS_OF_REASON.get(reason, 400)
            if reason in ("rate_limited", "engine_unavailable"):  # §6: an error on non-POST
                body = error(
                    reason,
                    message.text,
                    message.client_order_id or message.req_id,
                    message.retry_after_ms,
                    message.req_id,
                )
                return status, body, _retry_after(message.retry_after_ms)
            return status, raw, []
        elif kind is CancelAllDone:
            done = rest_reply_decoder.decode(raw)
            assert isinstance(done, CancelAllDone)
            fields = msgspec.structs.asdict(done)
            body = encode(
                {
                    "type": "cancel_all_done",
                    **fields,
                    "reports": [msgspec.Raw(report) for report in reports],
                }
            )
            return 200, body, []
        elif kind is not ExecutionReport and type(request) not in (
            NewOrder,
            CancelOrder,
            AmendOrder,
            CancelAll,
        ):
            return 200, raw, []  # account / orders / order
    # an order_result: every report the request caused at once (account updates dropped)
    body = b'{"type":"order_result","reports":[%b]}' % b",".join(reports)
    status = 200
    for raw in reports:
        report = rest_reply_decoder.decode(raw)
        assert isinstance(report, ExecutionReport)
        if report.exec_type == "rejected":
            why = report.reject_reason
            status = {"rate_limited": 429, "engine_unavailable": 503}.get(why or "", 400)
            return status, body, _retry_after(report.retry_after_ms)
    return status, body, []
