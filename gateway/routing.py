"""Routing what the engine sends to the right sessions (pure: sessions deliver via callbacks).

The engine's frames to a gateway are JSON arrays of ``reply`` (answer to one envelope) and
``push`` (private events caused elsewhere) objects. Messages stay as the engine encoded them
(``msgspec.Raw``): only a small header (``type``, ``account``, ``req_id``) is decoded to route,
and the bytes are forwarded unchanged.

Rules (PROTOCOL §3):

- ``execution_report`` and ``account_update`` go to every session of their account;
- everything else in a reply (``cancel_reject``, ``cancel_all_done``, ``account``, ``orders``,
  ``error``, ``logged_in``, ``registered``) goes only to the requesting session;
- in a push only execution reports and account updates are used.

A copy for a session other than the requester never echoes the requester's ``req_id``: it is
re-encoded with ``req_id`` null (rare: only when one account has several sessions).
"""

from __future__ import annotations

import msgspec

from exchange.protocol.messages import AccountUpdate, ExecutionReport
from gateway.sessions import Session, SessionRegistry


class Reply(msgspec.Struct, frozen=True, tag_field="type", tag="reply"):
    id: int
    messages: list[msgspec.Raw]


class Push(msgspec.Struct, frozen=True, tag_field="type", tag="push"):
    events: list[msgspec.Raw]


class Header(msgspec.Struct, frozen=True):
    """The fields routing looks at; every other field is skipped by the decoder."""

    type: str
    account: str | None = None
    req_id: str | int | None = None
    code: str | None = None


engine_frame_decoder = msgspec.json.Decoder(list[Reply | Push] | Reply | Push)
"""Decodes one frame from the engine's command port."""
header_decoder = msgspec.json.Decoder(Header)
_event_decoder = msgspec.json.Decoder(ExecutionReport | AccountUpdate)
_encode = msgspec.json.Encoder().encode

_FANOUT = frozenset({"execution_report", "account_update"})


def without_req_id(data: bytes) -> bytes:
    """``data`` (an encoded execution report) with ``req_id`` null."""
    event = _event_decoder.decode(data)
    return _encode(msgspec.structs.replace(event, req_id=None))


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
            header = header_decoder.decode(data)
            if header.type in _FANOUT and header.account is not None:
                owner = header.account
                if owner == account:
                    direct.append(data)
                    others = [s for s in registry.of(owner) if s is not session]
                else:
                    others = registry.of(owner)
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
            header = header_decoder.decode(data)
            if header.type in _FANOUT and header.account is not None:
                sessions = registry.of(header.account)
                if sessions:
                    self._fan_out(sessions, data, header)

    def _fan_out(self, sessions: list[Session], data: bytes, header: Header) -> None:
        if header.req_id is not None:
            data = without_req_id(data)
        for session in sessions:
            session.deliver(data)
        self.routed += len(sessions)
