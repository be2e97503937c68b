"""Per-account token buckets (pure: the caller passes the clock).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each request
that counts takes one. An empty bucket answers how long until the next token, which the
gateway sends back as ``retry_after_ms``.
"""

from __future__ import annotations

import math


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = now

    def take(self, now: float) -> float:
        """Take one token at time ``now`` (seconds, monotonic). Returns 0.0 if it was there,
        else the seconds until one will be (nothing is taken then)."""
        tokens = self._tokens + (now - self._stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        if self.rate <= 0:
            return math.inf
        return (1.0 - tokens) / self.rate


class RateLimiter:
    """One bucket per account, shared by all of the account's sessions on this gateway.

    Buckets are kept when sessions close, so reconnecting does not refill a burst."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, account: str, rate: float, burst: int, now: float) -> int:
        """Take a token for ``account``. Returns 0 when allowed, else ``retry_after_ms``
        (at least 1). A change of ``rate``/``burst`` for the account starts a fresh bucket."""
        bucket = self._buckets.get(account)
        if bucket is None or bucket.rate != rate or bucket.burst != max(1, burst):
            bucket = self._buckets[account] = TokenBucket(rate, burst, now)
        wait = bucket.take(now)
        if wait == 0.0:
            return 0
        if math.isinf(wait):
            return 2**31 - 1
        return max(1, math.ceil(wait * 1000))
