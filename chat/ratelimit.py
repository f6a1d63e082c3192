"""In-process rate limits: token buckets for request floods, and a throttle
for events that only make sense now and then (typing). They are per server
process; a client spread over several processes gets each one's allowance
(chat.limits holds the per-user limits that span processes). Each reads
the time from `clock` (time.monotonic unless a test gives its own)."""

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

Clock = Callable[[], float]


class TokenBucket:
    """Allows `rate` events a second on average and `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = float(burst), clock()

    def take(self) -> int:
        """Take a token and return 0, or return the milliseconds until one
        will be there."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return max(1, math.ceil((1 - self.tokens) / self.rate * 1000))
        self.tokens -= 1
        return 0


class KeyedBuckets:
    """A token bucket per key, for at most `size` recently seen keys."""

    def __init__(self, rate: float, burst: int, size: int = 10_000, clock: Clock = time.monotonic):
        self.rate, self.burst, self.size, self.clock = rate, burst, size, clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable) -> int:
        """TokenBucket.take of the key's bucket."""
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst, self.clock)
        self._buckets[key] = bucket
        if len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return bucket.take()


class Throttle:
    """At most one event per key every `interval` seconds."""

    def __init__(self, interval: float, size: int = 10_000, clock: Clock = time.monotonic):
        self.interval, self.size, self.clock = interval, size, clock
        self._last: OrderedDict[Hashable, float] = OrderedDict()

    def ready(self, key: Hashable) -> bool:
        now = self.clock()
        if now - self._last.get(key, float("-inf")) < self.interval:
            return False
        self._last.pop(key, None)
        self._last[key] = now
        if len(self._last) > self.size:
            self._last.popitem(last=False)
        return True
