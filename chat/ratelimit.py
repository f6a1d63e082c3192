"""In-process rate limits: token buckets for request floods, and a throttle
for events that only make sense now and then (typing). They are per server
process; a client spread over several processes gets each one's allowance
(chat.limits holds the per-user limits that span processes)."""

import math
import time
from collections import OrderedDict
from collections.abc import Hashable


class TokenBucket:
    """Allows `rate` events a second on average and `burst` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> int:
        """Take a token and return 0, or return the milliseconds until one
        will be there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return max(1, math.ceil((1 - self.tokens) / self.rate * 1000))
        self.tokens -= 1
        return 0


class KeyedBuckets:
    """A token bucket per key, for at most `size` recently seen keys."""

    def __init__(self, rate: float, burst: int, size: int = 10_000):
        self.rate, self.burst, self.size = rate, burst, size
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable) -> int:
        """TokenBucket.take of the key's bucket."""
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket
        if len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return bucket.take()


class Throttle:
    """At most one event per key every `interval` seconds."""

    def __init__(self, interval: float, size: int = 10_000):
        self.interval, self.size = interval, size
        self._last: OrderedDict[Hashable, float] = OrderedDict()

    def ready(self, key: Hashable) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval:
            return False
        self._last.pop(key, None)
        self._last[key] = now
        if len(self._last) > self.size:
            self._last.popitem(last=False)
        return True
