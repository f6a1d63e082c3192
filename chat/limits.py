"""Per-user abuse limits that hold across server processes: sends a second,
rooms created an hour, open sockets. They are counted in the channel
layer's Redis (the first server, when REDIS_URL names several: a user's
counters must live in one place, and they are few and small), under its key
prefix (deployments and test runs that share a Redis never share counters),
by Lua scripts on Redis's clock: each check is one atomic round trip, on a
client of the running event loop.

Fail open: when Redis does not answer within LIMITS_REDIS_TIMEOUT_SECONDS,
a check passes and a WARNING is logged (at most every 10 s). Redis already
carries live delivery; refusing every send and connect while it is away
would turn a delivery outage into a total one (messages are still stored
and caught up by seq), and the in-process limits (SOCKET_RATE per socket,
API_RATE per user and process) still bound what one client can do. With
the in-memory channel layer (one process, development) there is no Redis
and no per-user limit."""

import asyncio
import logging
import math
import weakref
from typing import Any

from django.conf import settings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chat import metrics
from chat.errors import RateLimited
from chat.ratelimit import Throttle

log = logging.getLogger(__name__)

# KEYS[1]: a token bucket (hash). ARGV: tokens a second, burst. Takes a token
# and returns 0, or returns the milliseconds until one will be there.
TOKEN_BUCKET = """
redis.replicate_commands()
local rate, burst = tonumber(ARGV[1]) / 1000, tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < 1 then
  return math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate))
return 0
"""  # noqa: S105 (a Lua script, not a password)

# KEYS[1]: a user's sockets, a sorted set of socket ids scored by expiry
# (ms). ARGV: socket id, limit, lifetime (ms). Expired entries are dropped;
# a socket that holds a slot, or fits under the limit, gets `lifetime` more
# and 1 is returned; otherwise 0. With limit 0 it only refreshes.
SOCKET_SLOTS = """
redis.replicate_commands()
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_outage_log = Throttle(10.0)


class Limiter:
    """The scripts on one event loop's Redis client (EVALSHA; the script is
    loaded on first use or after Redis restarts)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.bucket = client.register_script(TOKEN_BUCKET)
        self.slots = client.register_script(SOCKET_SLOTS)


_limiters: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Limiter]" = weakref.WeakKeyDictionary()


def _limiter() -> Limiter | None:
    """The running loop's limiter, built on first use; None without Redis."""
    config: dict[str, Any] | None = settings.CHANNEL_LAYERS["default"].get("CONFIG")
    if config is None:
        return None
    loop = asyncio.get_running_loop()
    if loop not in _limiters:
        timeout = settings.LIMITS_REDIS_TIMEOUT_SECONDS
        client = Redis.from_url(
            config["hosts"][0]["address"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a failed check passes; retrying would only delay it
            max_connections=settings.REDIS_MAX_CONNECTIONS,
        )
        _limiters[loop] = Limiter(client)
    return _limiters[loop]


def _key(kind: str, user_id: str) -> str:
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    return f"{config['prefix']}:limits:{kind}:{user_id}"


def _outage(error: Exception) -> None:
    if _outage_log.ready("redis"):
        log.warning("per-user limits not enforced: Redis failed (%r)", error)


async def _take(kind: str, user_id: str, rate: float, burst: int) -> None:
    limiter = _limiter()
    if limiter is None:
        return
    try:
        wait_ms = await limiter.bucket(keys=[_key(kind, user_id)], args=[rate, burst])
    except (RedisError, OSError) as error:
        _outage(error)
        return
    if wait_ms:
        metrics.RATE_LIMITED.labels(f"user_{kind}").inc()
        raise RateLimited(retry_after_ms=int(wait_ms))


async def check_send(user_id: str) -> None:
    """Count one message of the user's, on any socket or process: at most
    USER_SEND_RATE a second on average, USER_SEND_BURST at once. Call it
    after validation and before any write. Raises RateLimited."""
    await _take("sends", user_id, settings.USER_SEND_RATE, settings.USER_SEND_BURST)


async def check_room_creation(user_id: str) -> None:
    """Count one room created by the user: USER_ROOMS_PER_HOUR at once, then
    one every 3600 / USER_ROOMS_PER_HOUR seconds. Raises RateLimited."""
    per_hour = settings.USER_ROOMS_PER_HOUR
    await _take("rooms", user_id, per_hour / 3600, per_hour)


async def _slot(user_id: str, socket_id: str, limit: int) -> bool:
    limiter = _limiter()
    if limiter is None:
        return True
    lifetime_ms = math.ceil(settings.USER_SOCKET_SLOT_SECONDS * 1000)
    try:
        return bool(await limiter.slots(keys=[_key("sockets", user_id)], args=[socket_id, limit, lifetime_ms]))
    except (RedisError, OSError) as error:
        _outage(error)
        return True


async def claim_socket(*, user_id: str, socket_id: str) -> bool:
    """Take one of the user's USER_MAX_SOCKETS slots for a new socket; False
    when they are all held. The slot lapses USER_SOCKET_SLOT_SECONDS later
    unless refresh_socket renews it, so a dead process's sockets stop
    counting on their own."""
    return await _slot(user_id, socket_id, settings.USER_MAX_SOCKETS)


async def refresh_socket(*, user_id: str, socket_id: str) -> None:
    """Renew a held slot (one released or lapsed stays free). Never raises."""
    await _slot(user_id, socket_id, 0)


async def release_socket(*, user_id: str, socket_id: str) -> None:
    """Free the socket's slot at once. Never raises (the slot lapses)."""
    limiter = _limiter()
    if limiter is None:
        return
    try:
        await limiter.client.zrem(_key("sockets", user_id), socket_id)
    except (RedisError, OSError) as error:
        _outage(error)


async def close() -> None:
    """Close the running loop's client (at shutdown, or when a test's loop
    ends)."""
    limiter = _limiters.pop(asyncio.get_running_loop(), None)
    if limiter is not None:
        await limiter.client.aclose()
