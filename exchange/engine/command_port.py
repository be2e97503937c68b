"""The command port (``--command-port``): gateways' envelopes in, ``EngineReply``s out.

A gateway sends frames of one envelope or a JSON array of envelopes. They are handled in
order, synchronously (the core is never touched across an ``await``), and each gets exactly
one ``EngineReply`` with its ``id``; the replies of one loop iteration leave in one frame after
the journal commit (see ``publisher``).

- ``Submit``: the order command goes through the sequencer; the reply holds every private
  message it caused (any account's) and any ``error``.
- ``Authenticate``: ``logged_in`` (with the account's limits) or ``error`` ``auth_failed``;
  one of the config's ``[admin] api_keys`` logs in as an operator (``account`` null,
  ``admin`` true).
- ``Operate``: an operator command (``publish_news``, ``start_round``) through the sequencer;
  the reply holds what it caused (the ``news`` / ``round_started``, the cancels and account
  updates of a round), and the broadcasts go to every other gateway too.
- ``RegisterAccount``: checks (``register_disabled``, ``account_exists``, ``invalid_message``
  for a bad name or cash), then a ``CreateAccount`` with a fresh API key goes through the
  sequencer (so it is journaled); the reply is ``registered`` then the new account's
  ``account_update``.
- ``Query``: ``account``, ``orders`` or one ``order`` for the account, as of the last event
  (``order``: a live order in full; a done one from the done-order memory, which keeps only
  its final status and client order id; another account's or a forgotten one: ``error``
  ``unknown_order``).

The port never closes a gateway's link because of what an envelope holds:
- an envelope that does not decode is counted and answered, if its ``id`` can be read, with an
  ``error`` ``invalid_message`` (it is a gateway bug, not a client's);
- an order command whose ``qty``/``price`` nothing downstream can represent
  (``exchange.protocol.bounds``) is refused here, before the journal, with the same
  ``rejected`` / ``cancel_reject`` the gateway would have sent (``seq`` null);
- an exception while handling an envelope (a bug) is logged with its traceback and answered
  ``internal_error``; the link and every other envelope carry on.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from exchange.engine.metrics import EngineStats
from exchange.engine.publisher import GatewayPeer, Publisher
from exchange.engine.sequencer import Sequencer
from exchange.protocol.bounds import order_problem
from exchange.protocol.codec import encode, envelope_decoder, json_object, split_frame
from exchange.protocol.config import SystemConfig
from exchange.protocol.internal import (
    Authenticate,
    Operate,
    Query,
    RegisterAccount,
    Submit,
)
from exchange.protocol.messages import (
    AmendOrder,
    CreateAccount,
    Error,
    GetAccount,
    GetOrder,
    Limits,
    LoggedIn,
    NewOrder,
    Orders,
    OrderState,
    Registered,
)
from exchange.protocol.names import ACCOUNT_NAME_TEXT, valid_account_name
from exchange.protocol.replies import error, rejection
from exchange.service.outbox import Outbox

log = structlog.get_logger("engine.command_port")


class CommandPort:
    """Serves gateway connections; one per engine."""

    def __init__(
        self,
        sequencer: Sequencer,
        publisher: Publisher,
        config: SystemConfig,
        stats: EngineStats,
        *,
        buffer_limit: int,
    ) -> None:
        self._sequencer = sequencer
        self._core = sequencer.core
        self._publisher = publisher
        self._stats = stats
        self._buffer_limit = buffer_limit
        gateway = config.gateway
        self._allow_register = gateway.allow_register
        self._register_cash = gateway.register_cash
        self._orders_per_second = gateway.orders_per_second
        self._burst = gateway.burst
        self._admin_keys = frozenset(config.admin.api_keys)
        self._ids = itertools.count(1)
        self.connections = 0
        self._no_gateways = asyncio.Event()
        self._no_gateways.set()

    async def wait_no_gateways(self) -> None:
        """Wait until no gateway is connected (the engine's stop grace)."""
        await self._no_gateways.wait()

    def queued_bytes(self) -> int:
        return sum(peer.outbox.queued_bytes for peer in self._publisher.gateways)

    # ------------------------------------------------------------------ connection

    async def handle(self, ws: ServerConnection) -> None:
        """One gateway, until it disconnects."""
        name = f"gateway-{next(self._ids)}"

        async def send(frame: bytes) -> None:
            await ws.send(frame, text=True)

        def overflow() -> None:
            self._stats.slow_disconnects["command"] += 1
            log.warning("gateway_too_slow", gateway=name, limit=self._buffer_limit)
            asyncio.get_running_loop().create_task(ws.close(1013, "gateway too slow"))

        outbox = Outbox(send, limit=self._buffer_limit, always_array=True, on_overflow=overflow)
        peer = GatewayPeer(name, outbox)
        self._publisher.add_gateway(peer)
        self.connections += 1
        self._no_gateways.clear()
        writer = asyncio.get_running_loop().create_task(outbox.run())
        log.info("gateway_connected", gateway=name, remote=str(ws.remote_address))
        try:
            while True:
                frame = await ws.recv(decode=False)
                self.handle_frame(peer, frame)
                self._publisher.release_now()  # the frame's replies go now, not next iteration
                await outbox.flush()  # from this task: no wake-up of the writer to wait for
        except ConnectionClosed:
            pass
        finally:
            self.connections -= 1
            if not self.connections:
                self._no_gateways.set()
            self._publisher.remove_gateway(peer)
            outbox.close()
            writer.cancel()
            log.info("gateway_disconnected", gateway=name)

    def handle_frame(self, peer: GatewayPeer, frame: bytes) -> None:
        """Handle every envelope of ``frame`` in order and stage their replies."""
        stats = self._stats
        perf = time.perf_counter
        for raw in split_frame(frame):  # a frame that does not split is one bad envelope
            started = perf()
            envelope = envelope_decoder.decode_one(raw)
            kind = type(envelope)
            if kind is Error:
                self._bad_envelope(peer, envelope, raw)  # type: ignore[arg-type]
                continue
            try:
                if kind is Submit:
                    messages = self._submit(peer, envelope)  # type: ignore[arg-type]
                elif kind is Query:
                    messages = self._query(envelope)  # type: ignore[arg-type]
                elif kind is Authenticate:
                    messages = self._authenticate(envelope)  # type: ignore[arg-type]
                elif kind is Operate:
                    messages = self._operate(peer, envelope)  # type: ignore[arg-type]
                else:
                    messages = self._register(peer, envelope)  # type: ignore[arg-type]
            except Exception:
                stats.command_failures += 1
                log.exception("command_failed", gateway=peer.name, envelope=kind.__name__)
                text = "the engine failed to handle this request"
                messages = [error("internal_error", text, None)]
            stats.commands[kind.__name__] += 1
            self._publisher.stage_reply(peer, envelope.id, messages)  # type: ignore[union-attr]
            stats.command_latency.observe(perf() - started)

    # ------------------------------------------------------------------ envelopes

    def _submit(self, peer: GatewayPeer, envelope: Submit) -> list[bytes]:
        command = envelope.command
        kind = type(command)
        if kind is NewOrder or kind is AmendOrder:
            problem = order_problem(
                command.qty,  # type: ignore[union-attr]
                command.price,  # type: ignore[union-attr]
                command.trigger_price,  # type: ignore[union-attr]
            )
            if problem is not None:  # refused before the journal: replay never sees it
                self._stats.bad_envelopes += 1
                reason, text = problem
                return [rejection(command, envelope.account, reason, text, time.time_ns())]
        events = self._sequencer.submit(envelope.account, command)
        return self._publisher.publish(events, peer)

    def _query(self, envelope: Query) -> list[bytes]:
        request = envelope.request
        core = self._core
        if isinstance(request, GetAccount):
            reply: Any = core.account_reply(envelope.account, request.req_id)
            if reply is None:
                reply = Error(
                    code="invalid_message",
                    text=f"unknown account {envelope.account!r}",
                    ref=request.req_id,
                    req_id=request.req_id,
                )
        elif isinstance(request, GetOrder):
            reply = self._order_state(envelope.account, request)
        else:
            reply = Orders(
                orders=core.open_orders(envelope.account, request.symbol),
                symbol=request.symbol,
                req_id=request.req_id,
                seq=core.last_seq,
            )
        return [encode(reply)]

    def _order_state(self, account: str, request: GetOrder) -> OrderState | Error:
        """``get_order``: the account's live order, else its remembered done order."""
        core = self._core
        order_id = request.order_id
        live = next(
            (o for o in core.open_orders(account) if o.order_id == order_id), None
        )  # a scan of one account's live orders (bounded by max_open_orders)
        if live is not None:
            return OrderState(
                order_id=live.order_id,
                client_order_id=live.client_order_id,
                status=live.status,
                live=True,
                symbol=live.symbol,
                side=live.side,
                order_type=live.order_type,
                tif=live.tif,
                price=live.price,
                qty=live.qty,
                cum_qty=live.cum_qty,
                leaves_qty=live.leaves_qty,
                avg_px=live.avg_px,
                post_only=live.post_only,
                req_id=request.req_id,
                seq=core.last_seq,
                expire_at=live.expire_at,
                trigger_price=live.trigger_price,
                activate_at=live.activate_at,
                reduce_only=live.reduce_only,
                triggered=live.triggered,
            )
        done = core.venue.done.get(order_id)
        if done is not None and done[0] == account:
            return OrderState(
                order_id=order_id,
                client_order_id=done[2],
                status=done[1],
                live=False,
                req_id=request.req_id,
                seq=core.last_seq,
            )
        return Error(
            code="unknown_order",
            text=f"no order {order_id} of this account",
            ref=request.req_id,
            req_id=request.req_id,
        )

    def limits(self, account: str) -> Limits:
        """The limits ``logged_in`` / ``registered`` announce for ``account``."""
        state = self._core.account(account)
        max_open = state.max_open_orders if state is not None else 0
        return Limits(
            orders_per_second=self._orders_per_second,
            burst=self._burst,
            max_open_orders=max_open,
        )

    def _operate(self, peer: GatewayPeer, envelope: Operate) -> list[bytes]:
        """An operator command (the gateway checked the session is an admin's)."""
        events = self._sequencer.submit("", envelope.command)
        return self._publisher.publish(events, peer)

    def _authenticate(self, envelope: Authenticate) -> list[bytes]:
        if envelope.api_key in self._admin_keys:
            return [encode(LoggedIn(account=None, limits=None, admin=True))]
        account = self._core.account_for_key(envelope.api_key)
        if account is None:
            return [encode(Error(code="auth_failed", text="invalid API key", ref=None))]
        return [encode(LoggedIn(account=account, limits=self.limits(account)))]

    def _register(self, peer: GatewayPeer, envelope: RegisterAccount) -> list[bytes]:
        req_id = envelope.req_id
        if not self._allow_register:
            return [
                encode(
                    Error(
                        code="register_disabled",
                        text="registration is disabled",
                        ref=req_id,
                        req_id=req_id,
                    )
                )
            ]
        name = envelope.account
        if not valid_account_name(name):
            text = ACCOUNT_NAME_TEXT
            return [encode(Error(code="invalid_message", text=text, ref=req_id, req_id=req_id))]
        cash = envelope.cash
        if not 0 < cash <= self._register_cash:
            text = f"cash must be > 0 and <= {self._register_cash:g}"
            return [encode(Error(code="invalid_message", text=text, ref=req_id, req_id=req_id))]
        if self._core.account(name) is not None:
            return [
                encode(
                    Error(
                        code="account_exists",
                        text=f"account {name!r} exists",
                        ref=req_id,
                        req_id=req_id,
                    )
                )
            ]
        api_key = secrets.token_urlsafe(24)
        events = self._sequencer.submit(
            "", CreateAccount(account=name, cash=cash, api_key=api_key, req_id=req_id)
        )
        messages = self._publisher.publish(events, peer)
        if self._core.account(name) is None:  # the core refused: its error is in messages
            return messages
        registered = Registered(
            account=name, api_key=api_key, limits=self.limits(name), req_id=req_id
        )
        return [encode(registered), *messages]

    def _bad_envelope(self, peer: GatewayPeer, error: Error, raw: bytes) -> None:
        """Answer an undecodable envelope if its id can be found; count it either way."""
        self._stats.bad_envelopes += 1
        log.warning("bad_envelope", gateway=peer.name, error=error.text)
        envelope_id = _find_id(raw)
        if envelope_id is not None:
            self._publisher.stage_reply(peer, envelope_id, [encode(error)])


def _find_id(raw: bytes) -> int | None:
    """The ``id`` of an envelope that did not decode, if it has one. Never raises."""
    value = json_object(raw)
    if value is not None and type(value.get("id")) is int:
        return int(value["id"])
    return None
