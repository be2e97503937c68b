"""Per-account rate limits (pure: the caller passes the clock).

Each account has one ``exchange.protocol.ratelimit.TokenBucket`` (the bucket ``limits``
announce: ``rate`` tokens per second, at most ``burst`` stored); each request that counts takes
one. An empty bucket answers how long until the next token, which the gateway sends back as
``retry_after_ms``.
"""

from __future__ import annotations

import math

from exchange.protocol.ratelimit import TokenBucket


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
