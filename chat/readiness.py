"""Readiness: whether this process can serve, for /readyz. Redis (every
host of the channel layer) and DynamoDB must each answer within
READY_TIMEOUT_SECONDS; both are asked at once, from the event loop.

Concurrent requests share the check under way, so a load balancer (or a
flood) never has more than one check in flight per process."""

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chat import storage
from chat.ratelimit import Throttle
from chat.tasks import stop

log = logging.getLogger(__name__)
_failure_log = Throttle(10.0)


@dataclass(frozen=True)
class Check:
    ok: bool
    ms: int
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "ms": self.ms, **({"error": self.error} if self.error else {})}


def redis_addresses() -> list[str]:
    """The channel layer's Redis hosts (none with the in-memory layer)."""
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"].get("CONFIG") or {}
    return [host["address"] if isinstance(host, dict) else host for host in config.get("hosts", [])]


async def _ping(address: str) -> None:
    # A connection of its own, closed after: one TCP connect every few
    # seconds costs Redis nothing, and nothing is left open when a check
    # is abandoned at its deadline.
    bound = settings.READY_TIMEOUT_SECONDS
    client = Redis.from_url(address, socket_timeout=bound, socket_connect_timeout=bound, retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
    finally:
        await client.aclose()


class HostFailed(Exception):
    """One of several hosts failed (named by its place, not its address)."""


async def _redis() -> None:
    """Raises HostFailed for the first host (counted from 1) that did not
    answer within READY_TIMEOUT_SECONDS."""
    addresses = redis_addresses()
    pings = [asyncio.create_task(_ping(address)) for address in addresses]
    _, late = await asyncio.wait(pings, timeout=settings.READY_TIMEOUT_SECONDS)
    await stop(*late)
    for number, ping in enumerate(pings, 1):
        error = TimeoutError() if ping in late else ping.exception()
        if error is not None:
            raise HostFailed(f"host {number} of {len(addresses)}: {_reason(error)}")


async def _dynamodb() -> None:
    bound = settings.READY_TIMEOUT_SECONDS
    async with asyncio.timeout(bound):  # the deadline stops the call's retries, this anything else
        with storage.deadline(bound):
            await storage.probe()


def _reason(error: BaseException) -> str:
    """What went wrong, for the body: never an address or a password (a
    client library's message may hold either), so the innermost cause's
    system error or class."""
    if isinstance(error, HostFailed):
        return str(error)
    chain = [error]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    if any(isinstance(link, TimeoutError) for link in chain):
        return f"no answer within {settings.READY_TIMEOUT_SECONDS:g} s"
    innermost = chain[-1]
    if isinstance(innermost, OSError) and innermost.errno:
        return os.strerror(innermost.errno)  # its own text may hold the address
    return type(innermost).__name__


async def _timed(probe: Callable[[], Awaitable[None]]) -> Check:
    started = time.monotonic()
    try:
        await probe()
        error = None
    except Exception as exc:  # any failure to answer is the answer
        error = _reason(exc)
    return Check(ok=error is None, ms=round((time.monotonic() - started) * 1000), error=error)


async def _check_all() -> dict[str, Check]:
    parts: dict[str, Callable[[], Awaitable[None]]] = {"dynamodb": _dynamodb}
    if redis_addresses():
        parts["redis"] = _redis
    checks = dict(zip(parts, await asyncio.gather(*(_timed(probe) for probe in parts.values())), strict=True))
    failing = {name: part.error for name, part in checks.items() if not part.ok}
    if failing and _failure_log.ready("readiness"):
        log.warning("not ready: %s", "; ".join(f"{name}: {error}" for name, error in failing.items()))
    return checks


_under_way: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[dict[str, Check]]]" = (
    weakref.WeakKeyDictionary()
)


async def check() -> dict[str, Check]:
    """Each part's check (redis only with a Redis channel layer), within
    READY_TIMEOUT_SECONDS; joins the check already under way, if any."""
    loop = asyncio.get_running_loop()
    task = _under_way.get(loop)
    if task is None or task.done():
        task = _under_way[loop] = loop.create_task(_check_all())
    return await asyncio.shield(task)
