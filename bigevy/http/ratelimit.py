"""Per-key token buckets: a burst is allowed, a sustained flood gets 429 with Retry-After.

Buckets live in each gateway replica's memory: with N replicas a key's ceiling is up to N
times its limit. That is the trade for no shared state on every request; Serve spreads a
caller's requests over replicas, so in practice each sees a share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bigevy.config import RateLimit

#: Buckets kept before full (idle) ones are forgotten.
MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    def __init__(
        self, limits: dict[str, RateLimit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, role: str) -> float | None:
        """Spend one token of `key`'s bucket: None if allowed, else seconds until one is."""
        limit = self.limits.get(role)
        if limit is None:
            return None
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(tokens=limit.burst, at=now)
        bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.at) * limit.per_second)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / limit.per_second

    def waiting(self, key: str, role: str) -> float | None:
        """Seconds until `key`'s bucket has a token, or None if it has one now (none spent)."""
        limit = self.limits.get(role)
        bucket = self._buckets.get(key)
        if limit is None or bucket is None:
            return None
        tokens = min(limit.burst, bucket.tokens + (self.clock() - bucket.at) * limit.per_second)
        return None if tokens >= 1 else (1 - tokens) / limit.per_second

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if now - bucket.at > 3600:
                del self._buckets[key]
