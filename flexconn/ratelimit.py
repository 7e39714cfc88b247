"""A token bucket, clock-agnostic so it works under trio's MockClock and in pure tests."""

from __future__ import annotations

__all__ = ["TokenBucket"]

#: Token counts this close to a whole number are that number.
_SNAP = 1e-9


class TokenBucket:
    """``rate`` tokens per ``per`` seconds, holding at most ``capacity`` tokens.

    The bucket never reads a clock itself: callers pass ``now``, which keeps it pure and lets the
    same code serve the connection (trio time) and the simulator.
    """

    def __init__(self, rate: float, *, per: float = 1.0, capacity: float | None = None) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and period must be positive")
        self._per_second = rate / per
        self.capacity = capacity if capacity is not None else rate
        self._tokens = self.capacity
        self._stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._per_second)
        if self._stamp is None or now > self._stamp:
            self._stamp = now
        # Float residue (0.999999999999 tokens) would read as "one missing in 1e-17 s": a sleep
        # that trio's MockClock never moves past, and an int() of 0 for a batch. Snap it.
        whole = round(self._tokens)
        if abs(self._tokens - whole) < _SNAP:
            self._tokens = float(whole)

    def try_take(self, now: float, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are available now."""
        self._refill(now)
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def delay(self, now: float, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` will be available (0 if they are now); takes nothing."""
        self._refill(now)
        missing = tokens - self._tokens
        return 0.0 if missing <= 0 else missing / self._per_second

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens
