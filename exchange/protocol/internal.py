"""The engine's internal wire protocol: the command port (gateways) and the event port.

Command port (``--command-port``, gateways only). A gateway sends frames holding one envelope
or a JSON array of envelopes (``GatewayToEngine``); every envelope carries a gateway-chosen
``id``. The engine answers each envelope with exactly one ``EngineReply`` carrying the same
``id`` and, in order, the private messages the request caused (execution reports, cancel
rejects, ``cancel_all_done``, account updates, ``logged_in``/``registered``/``account``/
``orders`` answers, errors). Replies to one frame are sent batched in one frame. Private
events that belong to accounts but were caused by someone else's request (a resting order
filled) reach every connected gateway as ``EnginePush``; gateways route by ``account``.

Event port (``--event-port``). A consumer sends one ``StreamRequest``. With ``since`` = a seq
it already has, the engine sends every event after it (from memory or, later, the journal);
with ``since`` null, or one the engine can no longer serve, it first sends an
``EngineSnapshot`` (state as of ``seq``) and then every event after that. Event frames are
JSON arrays of engine events (``exchange.protocol.messages.EngineEvent``) in gapless ``seq``
order. An ``EngineHeartbeat`` (``last_seq``) arrives every second when nothing else does.
"""

from __future__ import annotations

import msgspec

from exchange.protocol.messages import (
    AccountUpdate,
    AmendOrder,
    CancelAll,
    CancelOrder,
    GetAccount,
    GetOrder,
    GetOrders,
    InstrumentInfo,
    Leaderboard,
    MarketStatus,
    NewOrder,
    PriceLevel,
    PublishNews,
    SetStatus,
    StartRound,
)


class _Envelope(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", kw_only=True
):
    id: int


class Submit(_Envelope, frozen=True, tag="submit"):
    """An order command on behalf of ``account`` (the gateway has authenticated it)."""

    account: str
    command: NewOrder | CancelOrder | AmendOrder | CancelAll


class Authenticate(_Envelope, frozen=True, tag="authenticate"):
    """Which account does ``api_key`` log into? Answered with ``logged_in`` or an error
    ``auth_failed``."""

    api_key: str


class RegisterAccount(_Envelope, frozen=True, tag="register_account"):
    """Open an account (sim mode). The engine picks the API key; answered with ``registered``
    or an error (``register_disabled``, ``account_exists``, ``invalid_message``)."""

    account: str
    cash: float
    req_id: str | int | None = None


class Query(_Envelope, frozen=True, tag="query"):
    """A read-only request for ``account``: answered with ``account``, ``orders`` or
    ``order`` (or an ``error`` ``unknown_order`` for a ``get_order`` of an order that is not
    the account's or is no longer remembered)."""

    account: str
    request: GetAccount | GetOrders | GetOrder


class Operate(_Envelope, frozen=True, tag="operate"):
    """An operator command from an admin session (the gateway has checked the session is
    one, PROTOCOL §3.3): journaled and applied like an order command."""

    command: PublishNews | StartRound | SetStatus


GatewayToEngine = Submit | Authenticate | RegisterAccount | Query | Operate


class EngineReply(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="reply"):
    """Everything the envelope ``id`` caused that its requester must see, in order.

    The messages stay as the engine encoded them (``msgspec.Raw``): a gateway routes them by
    their ``RoutingHeader`` and forwards the bytes. The engine builds these frames with
    ``codec.encode_reply`` (the same shape, without building a Struct per reply)."""

    id: int
    messages: list[msgspec.Raw]


class EnginePush(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="push"):
    """Private events caused by another gateway's request (fills of resting orders,
    liquidations, mark-to-market account updates); built with ``codec.encode_push``."""

    events: list[msgspec.Raw]


class RoutingHeader(msgspec.Struct, frozen=True, gc=False):
    """The fields of a private message a gateway routes by; the decoder skips every other."""

    type: str
    account: str | None = None
    req_id: str | int | None = None
    code: str | None = None


_FAN_OUT = frozenset({"execution_report", "account_update"})


def fans_out(message_type: str) -> bool:
    """Whether a private message whose ``type`` is ``message_type`` goes to every session of
    its ``account`` (execution reports and account updates: the account may be logged in on
    several sessions and gateways) rather than only to the session whose request caused it
    (``cancel_reject``, ``cancel_all_done``, ``account``, ``orders``, ``error``, ``logged_in``,
    ``registered``).

    The engine pushes the first kind to every other gateway; a gateway delivers them to every
    session of the account. Never raises."""
    return message_type in _FAN_OUT


_BROADCAST = frozenset({"news", "round_started", "market_status"})


def broadcast(message_type: str) -> bool:
    """Whether a message whose ``type`` is ``message_type`` goes to every logged-in session
    of every gateway (``news``, ``round_started``, ``market_status``: PROTOCOL §3.2, §3.3),
    the requesting operator's
    own copy echoing its ``req_id``. The engine pushes these to every other gateway. Never
    raises."""
    return message_type in _BROADCAST


class StreamRequest(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="stream"
):
    since: int | None = None


class BookState(msgspec.Struct, frozen=True, gc=False):
    symbol: str
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    last_trade: float | None = None


class EngineSnapshot(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="snapshot"):
    """Full public state plus every account as of event ``seq``; events follow from seq + 1."""

    seq: int
    ts: int
    instruments: list[InstrumentInfo]
    books: list[BookState]
    accounts: list[AccountUpdate]
    leaderboard: Leaderboard | None = None
    """The last ``leaderboard`` the engine published (None before the first)."""
    statuses: list[MarketStatus] = []
    """Every symbol's trading status with its reason and end (``seq``/``ts``: the
    snapshot's), so a relay that (re)joins tells the whole story."""


class EngineHeartbeat(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="heartbeat"):
    ts: int
    last_seq: int
