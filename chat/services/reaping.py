"""Clearing the registry of connections that no process serves: those
whose ttl passed, and those of server processes that died (their heartbeat
expired, chat.services.liveness). Each reaped connection is closed with 4408
if it is open somewhere after all, and its user's rooms hear if it was the
user's last."""

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from chat import delivery, events, storage
from chat.blocking import run_blocking
from chat.domain import Connection

# Connections reaped at once: a dead process may have held thousands, and
# one after another would take minutes.
REAP_CONCURRENCY = 32
# How long a reaper holds a dead process before another may take over (if
# the first died too); longer than reaping thousands of connections takes.
REAP_LEASE_SECONDS = 60


async def reap(connections: Sequence[Connection], delete: Callable[[Connection], Awaitable[bool]], *, now: int) -> int:
    """Delete each connection's items with delete, which says whether it
    did (so of two reapers only one announces), then tell its sockets and
    its user's rooms. Returns how many were reaped; raises the first
    failure once every connection has been tried."""
    limit = asyncio.Semaphore(REAP_CONCURRENCY)

    async def one(connection: Connection) -> bool:
        async with limit:
            if not await delete(connection):
                return False
            await delivery.to_users_quietly([connection.user_id], events.connection_reaped(connection.connection_id))
            if await storage.set_offline(connection, now=now):
                participations = await storage.user_participations(connection.user_id)
                delivery.announce_presence(connection.user_id, [p.room_id for p in participations], online=False)
            return True

    outcomes = await asyncio.gather(*(one(connection) for connection in connections), return_exceptions=True)
    reaped = 0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        reaped += outcome
    return reaped


async def reap_dead_servers(*, reaper: str) -> int:
    """Reap the connections of every process whose heartbeat expired and
    that no other reaper holds, then forget the process. reaper names the
    caller (a live process's owner id is never reaped by itself). A process
    whose reaping fails is left claimed and taken up again after the lease.
    Returns how many connections were reaped."""
    now = int(time.time())
    reaped = 0
    for dead in await storage.dead_servers(now=now):
        if dead.owner == reaper:
            continue
        lease_until = now + REAP_LEASE_SECONDS
        if not await storage.claim_dead_server(dead.owner, reaper=reaper, now=now, lease_until=lease_until):
            continue  # alive again, or another reaper is on it
        connections = await storage.server_connections(dead.owner)
        reaped += await reap(connections, storage.delete_owned_connection, now=now)
        await storage.delete_heartbeat(dead.owner, reaper=reaper)
    return reaped


async def reap_expired_connections() -> int:
    """Reap every expired connection, and every connection of a process
    that died (for the reap_connections command; server processes reap dead
    ones themselves). Returns how many were reaped."""
    now = int(time.time())
    expired = await run_blocking(lambda: list(storage.expired_connections(now=now)))
    reaped = await reap(expired, functools.partial(storage.delete_expired_connection, now=now), now=now)
    reaped += await reap_dead_servers(reaper=f"command-{uuid.uuid4().hex}")
    await delivery.flush_presence()  # a command's loop ends with this call
    return reaped
