"""A token bucket with the time passed in (seconds, any monotonic origin): pure and testable."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; starts full.

    ``pause(until)`` empties the bucket until a moment, for servers that say
    ``retry_after_ms``.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._last = now
        self._paused_until = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            start = max(self._last, self._paused_until)
            if now > start:
                self.tokens = min(self.burst, self.tokens + (now - start) * self.rate)
            self._last = now

    def try_take(self, now: float) -> bool:
        """Take one token if there is one."""
        if now < self._paused_until:
            return False
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0 when one is)."""
        if now < self._paused_until:
            return self._paused_until - now + max(0.0, 1.0 - self.tokens) / self.rate
        self._refill(now)
        return max(0.0, 1.0 - self.tokens) / self.rate

    def pause(self, now: float, seconds: float) -> None:
        """Send nothing for ``seconds``, then refill from empty."""
        self._refill(now)
        self.tokens = 0.0
        self._paused_until = max(self._paused_until, now + seconds)
        self._last = max(self._last, now)
