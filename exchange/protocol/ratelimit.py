"""The token bucket that the ``limits`` of ``logged_in`` / ``registered`` describe.

``orders_per_second`` is the refill ``rate``, ``burst`` the most tokens stored; every order
request takes one. The gateway enforces it per account (answering ``rate_limited`` with
``retry_after_ms`` when it is empty), and a well-behaved client (the bots) runs the same bucket
to stay below it, so both sides count with one rule.

Pure: the caller passes the time (seconds, any monotonic origin; it must not go backwards).
Imports only the standard library.
"""

from __future__ import annotations

import math


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored (at least 1); starts full.

    A ``rate`` of 0 or less never refills: an empty bucket then waits ``math.inf``.
    ``pause(now, seconds)`` empties the bucket for a while (a client told ``retry_after_ms``).
    """

    __slots__ = ("_paused_until", "_stamp", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self._stamp = now
        self._paused_until = now

    def _refill(self, now: float) -> None:
        stamp = self._stamp
        if now > stamp:
            start = stamp if stamp >= self._paused_until else self._paused_until
            if now > start:
                tokens = self.tokens + (now - start) * self.rate
                self.tokens = tokens if tokens < self.burst else float(self.burst)
            self._stamp = now

    def _deficit(self) -> float:
        """Seconds until the bucket holds one token, from now, if nothing is paused."""
        missing = 1.0 - self.tokens
        if missing <= 0.0:
            return 0.0
        return missing / self.rate if self.rate > 0 else math.inf

    def take(self, now: float) -> float:
        """Take one token at time ``now``. Returns 0.0 if it was there, else the seconds until
        one will be (``math.inf`` if never); nothing is taken then."""
        paused_until = self._paused_until
        if now < paused_until:
            return paused_until - now + self._deficit()
        stamp = self._stamp
        tokens = self.tokens
        if now > stamp:  # ``_refill`` inlined: the gateway calls this once per order
            start = stamp if stamp >= paused_until else paused_until
            if now > start:
                tokens += (now - start) * self.rate
                if tokens > self.burst:
                    tokens = float(self.burst)
            self._stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return self._deficit()

    def try_take(self, now: float) -> bool:
        """Take one token if there is one; returns whether it did."""
        return self.take(now) == 0.0

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0.0 when one is). Takes nothing."""
        if now < self._paused_until:
            return self._paused_until - now + self._deficit()
        self._refill(now)
        return self._deficit()

    def pause(self, now: float, seconds: float) -> None:
        """Hold every token back for ``seconds`` from ``now``, then refill from empty."""
        self._refill(now)
        self.tokens = 0.0
        self._paused_until = max(self._paused_until, now + seconds)
        self._stamp = max(self._stamp, now)
