"""Client sessions and their bookkeeping (pure: no sockets; delivery is a callback).

- ``Session``: one client connection: its account once logged in, its limits, whether its
  account's orders are cancelled when it disconnects, its ordered reply queue and its flood
  guard. ``deliver`` queues one encoded message for the client (never blocks).
- ``ReplyQueue``: direct replies leave in request order even though some wait for the engine
  and others (``pong``, rejects made here) are ready at once: each request takes a slot; a slot
  is released when it and every slot before it are filled.
- ``SessionRegistry``: the logged-in sessions by account, for routing execution reports and
  account updates to every session of an account.
- ``FloodGuard``: more than ``limit`` invalid messages within ``window`` seconds.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

from exchange.protocol.messages import Limits

Deliver = Callable[[bytes], None]

_session_ids = itertools.count(1)


class FloodGuard:
    """Counts invalid messages in a sliding window."""

    __slots__ = ("_hits", "limit", "window")

    def __init__(self, limit: int = 100, window: float = 10.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: deque[float] = deque()

    def hit(self, now: float) -> bool:
        """Record one invalid message at ``now``; True when more than ``limit`` fall within the
        last ``window`` seconds."""
        hits = self._hits
        hits.append(now)
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        return len(hits) > self.limit


class Slot:
    """A place in a session's reply order; ``messages`` is None until the answer is known."""

    __slots__ = ("messages",)

    def __init__(self, messages: list[bytes] | None = None) -> None:
        self.messages = messages


class ReplyQueue:
    """Releases direct replies to ``deliver`` in the order their requests arrived."""

    __slots__ = ("_deliver", "_slots")

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._slots: deque[Slot] = deque()

    def __len__(self) -> int:
        return len(self._slots)

    def ready(self, messages: list[bytes]) -> None:
        """Replies known now: delivered at once unless earlier replies are still pending."""
        if not self._slots:
            deliver = self._deliver
            for message in messages:
                deliver(message)
        else:
            self._slots.append(Slot(messages))

    def reserve(self) -> Slot:
        """A slot for a reply that will be known later (``fill`` it exactly once)."""
        slot = Slot()
        self._slots.append(slot)
        return slot

    def fill(self, slot: Slot, messages: list[bytes]) -> None:
        """Give ``slot`` its replies and release every leading filled slot."""
        slot.messages = messages
        slots = self._slots
        deliver = self._deliver
        while slots and slots[0].messages is not None:
            for message in slots.popleft().messages:  # type: ignore[union-attr]
                deliver(message)


class Session:
    """One client connection."""

    __slots__ = (
        "account",
        "admin",
        "api_key",
        "cancel_on_disconnect",
        "closed",
        "deliver",
        "flood",
        "flooded",
        "id",
        "limits",
        "replies",
    )

    def __init__(self, deliver: Deliver, flood: FloodGuard | None = None) -> None:
        self.id = next(_session_ids)
        self.deliver = deliver
        self.account: str | None = None
        self.admin = False
        """An operator session (PROTOCOL §3.3): logged in, but with no account."""
        self.api_key: str | None = None
        self.limits: Limits | None = None
        self.cancel_on_disconnect = False
        self.closed = False
        self.replies = ReplyQueue(deliver)
        self.flood = flood or FloodGuard()
        self.flooded = False
        """Set when the flood guard tripped: the connection is to be closed with 1008."""

    def log_in(
        self,
        account: str | None,
        limits: Limits | None,
        cancel_on_disconnect: bool,
        admin: bool = False,
    ) -> None:
        """Logged in as ``account`` (with its ``limits``), or as an operator (``admin``:
        no account, no limits, nothing to cancel on disconnect)."""
        self.account = account
        self.limits = limits
        self.admin = admin
        self.cancel_on_disconnect = cancel_on_disconnect and not admin

    @property
    def logged_in(self) -> bool:
        return self.account is not None or self.admin

    def __repr__(self) -> str:
        return f"Session({self.id}, account={self.account!r}, admin={self.admin})"


class SessionRegistry:
    """Logged-in sessions by account."""

    __slots__ = ("_by_account", "_count", "_operators")

    def __init__(self) -> None:
        self._by_account: dict[str, list[Session]] = {}
        self._operators: list[Session] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, session: Session) -> None:
        """Register a session that has just logged in (an account's, or an operator's)."""
        assert session.logged_in
        if session.account is None:
            self._operators.append(session)
        else:
            self._by_account.setdefault(session.account, []).append(session)
        self._count += 1

    def remove(self, session: Session) -> bool:
        """Forget ``session``; returns whether it was registered."""
        if session.account is None:
            if session not in self._operators:
                return False
            self._operators.remove(session)
            self._count -= 1
            return True
        sessions = self._by_account.get(session.account)
        if not sessions or session not in sessions:
            return False
        sessions.remove(session)
        if not sessions:
            del self._by_account[session.account]
        self._count -= 1
        return True

    def everyone(self) -> list[Session]:
        """Every logged-in session, operators included (for broadcasts)."""
        everyone = list(self._operators)
        for sessions in self._by_account.values():
            everyone.extend(sessions)
        return everyone

    def of(self, account: str) -> list[Session]:
        """The account's sessions on this gateway (possibly none)."""
        return self._by_account.get(account, [])

    def accounts(self) -> list[str]:
        return list(self._by_account)
