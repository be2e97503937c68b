"""The gateway process shell: the clients' WebSocket server and the engine link.

``GatewayApp`` can run in-process (tests) or under ``python -m gateway``::

    app = GatewayApp(config, port=0, rest_port=0, engine_url="ws://127.0.0.1:9000")
    await app.start()          # binds; app.port (and app.rest_port) are real; the engine link
                               # connects in the background
    ...
    await app.stop()

Per connection: text frames are decoded (one message or a batch) and handed to the
dispatcher member by member; replies leave through the session's outbox (everything ready in
one loop iteration in one frame). A binary frame is an ``invalid_message`` error; frames over
``gateway.max_frame_bytes`` close 1009 and invalid UTF-8 closes 1007 (websockets does both);
more than 100 invalid messages within 10 s close 1008; a client that does not read (unsent
replies over ``session_buffer_limit``) is closed 1013.

REST order entry (PROTOCOL §6) runs on ``rest_port`` (None: no REST port) through the same
dispatcher: see ``gateway.rest``.

Authentication on the handshake: ``Authorization: Bearer <api_key>`` is checked with the engine
before the upgrade (401 with an ``auth_failed`` error body when wrong, 503 with
``engine_unavailable`` when the engine is down); the session starts logged in and its first
message is ``logged_in``. ``?cancel_on_disconnect=true`` on the URL sets that option.

Stopping (``stop``, on SIGTERM): the port stops accepting connections and the gateway turns
cancel-only (``new_order``/``amend_order`` are refused ``engine_unavailable``); every account
with a cancel-on-disconnect session gets its ``cancel_all`` sent to the engine at once, and the
gateway waits (at most ``STOP_CANCEL_TIMEOUT``) for the engine to answer everything in flight,
so the sessions receive their ``canceled`` reports; then it closes the sessions (1001) and the
engine link. The engine keeps serving a connected gateway while it stops itself, so a
whole-system stop (every process signalled at once) loses none of these cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from urllib.parse import parse_qs, urlsplit

import msgspec
import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from exchange.protocol.codec import encode, http_error_body, request_decoder
from exchange.protocol.config import SystemConfig
from exchange.protocol.messages import AmendOrder, Error, ErrorCode, LoggedIn, NewOrder
from exchange.service.http import http_handler, response
from exchange.service.outbox import Outbox
from gateway.dispatch import Dispatcher
from gateway.engine_link import EngineLink
from gateway.metrics import GatewayStats
from gateway.rest import RestServer
from gateway.sessions import FloodGuard, Session, SessionRegistry

log = structlog.get_logger("gateway")

SESSION_BUFFER_LIMIT = 8 * 1024 * 1024
"""Unsent bytes for one client before it is closed 1013."""
FLOOD_LIMIT = 100
FLOOD_WINDOW = 10.0
CLOSE_DRAIN_TIMEOUT = 1.0
STOP_CANCEL_TIMEOUT = 1.5
"""Seconds ``stop`` waits for the engine to answer the stop cancels and requests in flight."""
STOP_DRAIN_TIMEOUT = 0.5
"""Seconds ``stop`` then waits for the replies to be written to the clients."""
STARTUP_WAIT = 2.0
"""Seconds ``start`` waits for the engine before serving anyway (engine_unavailable)."""
_BINARY_FRAME = Error(
    code="invalid_message", text="binary frames are not supported: send JSON text frames"
)


class GatewayApp:
    """One gateway: client sessions on ``port``, one link to the engine."""

    def __init__(
        self,
        config: SystemConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rest_port: int | None = None,
        engine_url: str | None = None,
        session_buffer_limit: int = SESSION_BUFFER_LIMIT,
        flood_limit: int = FLOOD_LIMIT,
        flood_window: float = FLOOD_WINDOW,
        reconnect_initial: float = 0.05,
        reconnect_max: float = 2.0,
        startup_wait: float = STARTUP_WAIT,
    ) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._requested_rest_port = rest_port
        self.engine_url = engine_url or config.gateway.engine
        self.stats = GatewayStats()
        self.registry = SessionRegistry()
        self.link = EngineLink(
            self.engine_url,
            self.stats,
            on_push=self._on_push,
            on_up=self._on_link_up,
            initial_delay=reconnect_initial,
            max_delay=reconnect_max,
        )
        self.dispatcher = Dispatcher(self.link, self.registry, self.stats)
        self._startup_wait = startup_wait
        self._session_buffer_limit = session_buffer_limit
        self._flood = (flood_limit, flood_window)
        self._max_frame = config.gateway.max_frame_bytes
        self._handshake_logins: weakref.WeakKeyDictionary[
            ServerConnection, tuple[LoggedIn, bool]
        ] = weakref.WeakKeyDictionary()
        self._server: Server | None = None
        self._serving = False
        self._stopping = False
        self.connections = 0
        self._outboxes: set[Outbox] = set()
        self.port = 0
        self.registry_metrics = self.stats.registry()
        self.stats.gauges.update(
            {
                "gateway_connections": lambda: float(self.connections),
                "gateway_sessions_logged_in": lambda: float(len(self.registry)),
                "gateway_engine_up": lambda: 1.0 if self.link.up else 0.0,
                "gateway_engine_in_flight": lambda: float(self.link.in_flight),
                "gateway_client_queued_bytes": self.queued_bytes,
            }
        )
        self._health = http_handler(self.ready, self.registry_metrics)
        self.rest: RestServer | None = None
        if rest_port is not None:
            self.rest = RestServer(
                self.dispatcher,
                ready=self.ready,
                metrics=self.registry_metrics,
                stopping=lambda: self._stopping,
            )
            rest = self.rest
            self.stats.gauges["gateway_rest_connections"] = lambda: float(rest.connections)
            self.stats.gauges["gateway_rest_requests_total"] = lambda: float(rest.requests)
        self.rest_port = 0

    def queued_bytes(self) -> float:
        """Replies queued for clients and not yet written, over every session."""
        return float(sum(outbox.queued_bytes for outbox in self._outboxes))

    def ready(self) -> bool:
        """Serving and connected to the engine (``/healthz`` is 200 only then)."""
        return self._serving and self.link.up

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start connecting to the engine, wait up to ``startup_wait`` seconds for the first
        connection (so clients arriving right after start-up find the engine), then bind the
        port. Raises OSError if the port is taken."""
        self.link.start()
        if self._startup_wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.link.wait_up(), self._startup_wait)
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            compression=None,
            max_size=self._max_frame,
            max_queue=32,
            process_request=self._process_request,
            close_timeout=1,
            ping_interval=20,
            ping_timeout=20,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.rest is not None:
            assert self._requested_rest_port is not None
            try:
                await self.rest.start(self.host, self._requested_rest_port)
            except OSError:
                self._server.close()
                await self.link.stop()
                raise
            self.rest_port = self.rest.port
        self._serving = True
        log.info(
            "gateway_started", port=self.port, rest_port=self.rest_port, engine=self.engine_url
        )

    async def stop(self) -> None:
        """Stop accepting connections, turn cancel-only, send every cancel-on-disconnect
        session's ``cancel_all`` and wait (bounded) for the engine's answers and for them to
        reach the clients; then close every session (1001) and the engine link. Never raises;
        returns within about ``STOP_CANCEL_TIMEOUT + STOP_DRAIN_TIMEOUT`` plus the closing
        handshakes (1 s at most)."""
        self._serving = False
        server = self._server
        cancelled: list[str] = []
        if server is not None and not self._stopping:
            self._stopping = True
            self.link.detach()
            server.server.close()  # no new connections; the open sessions go on, cancel-only
            if self.rest is not None:
                await self.rest.stop()
            cancelled = self.dispatcher.cancel_on_stop()
            answered = await self.link.wait_idle(STOP_CANCEL_TIMEOUT)
            if not answered:
                log.warning("engine_answers_missing", in_flight=self.link.in_flight)
            outboxes = [outbox.drain() for outbox in self._outboxes]
            if outboxes:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*outboxes), STOP_DRAIN_TIMEOUT)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
            self._server = None
        await self.link.stop()
        owed = self.dispatcher.cancels_owed
        if owed:  # the engine was down: these accounts' orders stay until cancelled by hand
            log.warning("cancel_on_disconnect_not_sent", accounts=sorted(owed))
        log.info("gateway_stopped", cancelled_accounts=cancelled)

    async def __aenter__(self) -> GatewayApp:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ engine side

    def _on_push(self, events: list[msgspec.Raw]) -> None:
        self.dispatcher.on_push(events)

    def _on_link_up(self) -> None:
        self.dispatcher.on_link_up()

    # ------------------------------------------------------------------ handshake

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return self._health(connection, request)
        query = parse_qs(urlsplit(request.path).query)
        cancel_on_disconnect = query.get("cancel_on_disconnect", ["false"])[-1].lower() in (
            "1",
            "true",
            "yes",
        )
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return None  # log in with a message (cancel_on_disconnect is its field then)
        scheme, _, api_key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not api_key.strip():
            return _json_response(401, "auth_failed", "expected Authorization: Bearer <api_key>")
        answer = await self.dispatcher.authenticate(api_key.strip())
        if type(answer) is LoggedIn:
            self._handshake_logins[connection] = (answer, cancel_on_disconnect)
            return None
        assert type(answer) is Error
        self.stats.rejected[answer.code] += 1
        status = 503 if answer.code in ("engine_unavailable", "internal_error") else 401
        return _json_response(status, answer.code, answer.text)

    # ------------------------------------------------------------------ connection

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.stats.connections_opened += 1

        async def send(frame: bytes) -> None:
            await ws.send(frame, text=True)

        def overflow() -> None:
            self.stats.slow_closes += 1
            asyncio.get_running_loop().create_task(ws.close(1013, "slow consumer"))

        outbox = Outbox(
            send, limit=self._session_buffer_limit, always_array=False, on_overflow=overflow
        )
        self._outboxes.add(outbox)
        session = Session(outbox.put, FloodGuard(*self._flood))
        writer = asyncio.get_running_loop().create_task(outbox.run())
        dispatcher = self.dispatcher
        login = self._handshake_logins.pop(ws, None)
        if login is not None:
            answer, cancel_on_disconnect = login
            dispatcher.log_in(
                session, answer.account, answer.limits, cancel_on_disconnect, answer.admin
            )
            session.deliver(encode(answer))
        try:
            async for frame in ws:
                if type(frame) is bytes:
                    dispatcher.invalid(session, _BINARY_FRAME)
                else:  # str: websockets checked its UTF-8; msgspec reads it as it is
                    messages, _ = request_decoder.decode_frame(frame)
                    for message in messages:
                        if (
                            self._stopping
                            and session.account is not None
                            and isinstance(message, (NewOrder, AmendOrder))
                        ):
                            dispatcher.refuse_stopping(session, message)  # cancel-only
                            continue
                        waiter = dispatcher.handle(session, message)
                        if waiter is not None:
                            await waiter
                if session.flooded:
                    self.stats.flood_closes += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(outbox.drain(), CLOSE_DRAIN_TIMEOUT)
                    await ws.close(1008, "too many invalid messages")
                    break
        except ConnectionClosed:
            pass
        finally:
            self.connections -= 1
            dispatcher.disconnect(session)
            self._outboxes.discard(outbox)
            outbox.close()
            writer.cancel()


def _json_response(status: int, code: ErrorCode, text: str) -> Response:
    return response(status, http_error_body(code, text), "application/json")
