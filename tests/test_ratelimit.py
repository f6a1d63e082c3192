"""The in-process limits of chat/ratelimit.py on a clock the test moves."""

import pytest

from chat.ratelimit import KeyedBuckets, Throttle, TokenBucket

pytestmark = pytest.mark.unit


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_bucket_allows_its_burst_at_once_then_says_how_long_to_wait():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    assert bucket.take() == 500  # one token comes every half second
    clock.advance(0.2)
    assert bucket.take() == 300
    clock.advance(0.3)
    assert bucket.take() == 0
    assert bucket.take() == 500


def test_a_refused_take_costs_nothing():
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.take() == 0
    assert [bucket.take() for _ in range(5)] == [1000] * 5
    clock.advance(1)
    assert bucket.take() == 0


def test_an_idle_bucket_refills_to_its_burst_and_no_further():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    assert [bucket.take() for _ in range(2)] == [0, 0]
    clock.advance(3600)
    assert [bucket.take() for _ in range(3)] == [0, 0, 100]


def test_a_wait_under_a_millisecond_is_reported_as_one():
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    bucket.take()
    clock.advance(0.9999)
    assert bucket.take() == 1


def test_keys_have_buckets_of_their_own():
    clock = Clock()
    buckets = KeyedBuckets(rate=1, burst=1, clock=clock)
    assert buckets.take("alice") == 0
    assert buckets.take("alice") == 1000
    assert buckets.take("bob") == 0
    clock.advance(1)
    assert buckets.take("alice") == 0


def test_the_least_recently_seen_key_is_forgotten_past_the_size():
    clock = Clock()
    buckets = KeyedBuckets(rate=1, burst=1, size=2, clock=clock)
    for key in ("a", "b", "a", "c"):  # "b" is the least recently seen when "c" comes
        buckets.take(key)
    assert buckets.take("a") == 1000  # remembered: still empty
    assert buckets.take("b") == 0  # forgotten: a full bucket again


def test_a_throttle_lets_one_event_per_key_through_each_interval():
    clock = Clock()
    throttle = Throttle(2.0, clock=clock)
    assert throttle.ready("room-1:alice")
    assert throttle.ready("room-1:bob")
    clock.advance(1.999)
    assert not throttle.ready("room-1:alice")
    clock.advance(0.001)
    assert throttle.ready("room-1:alice")
    assert not throttle.ready("room-1:alice")


def test_a_throttled_event_does_not_restart_the_interval():
    clock = Clock()
    throttle = Throttle(2.0, clock=clock)
    assert throttle.ready("k")
    clock.advance(1.5)
    assert not throttle.ready("k")
    clock.advance(0.5)
    assert throttle.ready("k")


def test_a_throttle_forgets_the_oldest_key_past_its_size():
    clock = Clock()
    throttle = Throttle(60.0, size=2, clock=clock)
    for key in ("a", "b", "c"):
        assert throttle.ready(key)
    assert throttle.ready("a")  # forgotten, so ready again
    assert not throttle.ready("c")
