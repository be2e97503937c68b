"""Routing what the engine sends to the right sessions (pure: sessions deliver via callbacks).

The engine's frames to a gateway are JSON arrays of ``reply`` (answer to one envelope) and
``push`` (private events caused elsewhere) objects. Messages stay as the engine encoded them
(``msgspec.Raw``): only a small header (``type``, ``account``, ``req_id``) is decoded to route,
and the bytes are forwarded unchanged.

Rules (PROTOCOL §3; the first is ``exchange.protocol.internal.fans_out``, which the engine's
publisher applies too):

- ``execution_report`` and ``account_update`` go to every session of their account;
- ``news`` and ``round_started`` (``internal.broadcast``) go to every logged-in session,
  operators included; the requesting operator's copy keeps its ``req_id``;
- everything else in a reply (``cancel_reject``, ``cancel_all_done``, ``account``, ``orders``,
  ``error``, ``logged_in``, ``registered``) goes only to the requesting session;
- in a push only execution reports and account updates are used.

The frame shapes (``EngineReply``, ``EnginePush``, ``RoutingHeader``) and their decoders are
in ``exchange.protocol`` (``internal``, ``codec``).

A copy for a session other than the requester never echoes the requester's ``req_id``: it is
re-encoded with ``req_id`` null (rare: only when one account has several sessions).
"""

from __future__ import annotations

import msgspec

from exchange.protocol.codec import encode, private_event_decoder, routing_header_decoder
from exchange.protocol.internal import RoutingHeader, broadcast, fans_out
from gateway.sessions import Session, SessionRegistry


def without_req_id(data: bytes) -> bytes:
    """``data`` (an encoded execution report, account update, news or round_started) with
    ``req_id`` null."""
    event = private_event_decoder.decode(data)
    return encode(msgspec.structs.replace(event, req_id=None))


class Router:
    """Delivers engine messages to sessions of the registry."""

    __slots__ = ("_registry", "routed")

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry
        self.routed = 0
        """Messages delivered to sessions other than a requester (copies and pushes)."""

    def reply(self, session: Session | None, messages: list[msgspec.Raw]) -> list[bytes]:
        """Route the messages of a reply to ``session``'s request; returns its direct replies
        (in order) and delivers copies to other sessions. ``session`` None: nobody waits."""
        direct: list[bytes] = []
        account = session.account if session is not None else None
        registry = self._registry
        for raw in messages:
            data = bytes(raw)
            header = routing_header_decoder.decode(data)
            if header.account is not None and fans_out(header.type):
                owner = header.account
                if owner == account:
                    direct.append(data)
                    others = [s for s in registry.of(owner) if s is not session]
                else:
                    others = registry.of(owner)
                if others:
                    self._fan_out(others, data, header)
            elif broadcast(header.type):
                direct.append(data)
                others = [s for s in registry.everyone() if s is not session]
                if others:
                    self._fan_out(others, data, header)
            else:
                direct.append(data)
        return direct

    def push(self, events: list[msgspec.Raw]) -> None:
        """Route private events caused by another gateway's request or by the engine."""
        registry = self._registry
        for raw in events:
            data = bytes(raw)
            header = routing_header_decoder.decode(data)
            if header.account is not None and fans_out(header.type):
                sessions = registry.of(header.account)
            elif broadcast(header.type):
                sessions = registry.everyone()
            else:
                continue
            if sessions:
                self._fan_out(sessions, data, header)

    def _fan_out(self, sessions: list[Session], data: bytes, header: RoutingHeader) -> None:
        if header.req_id is not None:
            data = without_req_id(data)
        for session in sessions:
            session.deliver(data)
        self.routed += len(sessions)
