"""Connection lifecycle: registry, presence, expiry."""
import asyncio
import logging
import time
from dataclasses import dataclass, replace

from django.conf import settings

from chat import delivery, events, storage
from chat.auth import Identity
from chat.blocking import run_blocking
from chat.services.profiles import status_on_connect
from chat.errors import StorageUnavailable
from chat.storage import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedConnection:
    connection: Connection
    verification: str
    room_ids: list[str]


async def open_connection(*, identity: Identity, connection_id: str) -> OpenedConnection:
    """Register a new connection of an authenticated user: profile (created
    pending on first sight), Connection and UserConnection items, presence,
    and the rooms it must receive. The four are independent, so they run at
    once. Raises StorageUnavailable (with nothing of the connection left)."""
    now = storage.now_ms()
    connection = Connection(
        connection_id=connection_id,
        user_id=identity.user_id,
        connected_at=storage.iso_from_ms(now),
        ttl=now // 1000 + settings.CONNECTION_TTL_SECONDS,
    )
    outcomes = await asyncio.gather(
        status_on_connect(identity),
        storage.put_connection(connection),
        storage.user_participations(identity.user_id),
        storage.set_online(connection, now=now // 1000),
        return_exceptions=True,
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        await _forget_quietly(connection)
        raise failures[0]
    status, _, participations, first = outcomes
    room_ids = [participation.room_id for participation in participations]
    if first:
        delivery.announce_presence(identity.user_id, room_ids, online=True)
    return OpenedConnection(connection=connection, verification=status, room_ids=room_ids)


async def _forget_quietly(connection: Connection) -> None:
    """Undo a registration that could not complete; what stays is reaped."""
    try:
        await storage.delete_connection(connection.user_id, connection.connection_id)
        await storage.set_offline(connection, now=int(time.time()))
    except StorageUnavailable:
        log.warning("connection %s left for the reaper", connection.connection_id)


async def refresh_connection(connection: Connection) -> Connection:
    """Push the connection's expiry forward; returns the refreshed record."""
    now = int(time.time())
    refreshed = replace(connection, ttl=now + settings.CONNECTION_TTL_SECONDS)
    await storage.put_connection(refreshed)
    await storage.set_online(refreshed, now=now)
    return refreshed


async def close_connection(connection: Connection, *, room_ids: list[str]) -> None:
    """Forget a closed connection; the user's rooms hear if it was their last."""
    await storage.delete_connection(connection.user_id, connection.connection_id)
    if await storage.set_offline(connection, now=int(time.time())):
        delivery.announce_presence(connection.user_id, room_ids, online=False)


async def reap_expired_connections() -> int:
    """Delete both items of every expired connection and close it if it is
    still open somewhere. Returns how many were reaped."""
    now = int(time.time())
    expired = await run_blocking(lambda: list(storage.expired_connections(now=now)))
    reaped = 0
    for connection in expired:
        if await storage.delete_expired_connection(connection, now=now):
            reaped += 1
            await delivery.to_users_quietly([connection.user_id], events.connection_reaped(connection.connection_id))
            if await storage.set_offline(connection, now=now):
                participations = await storage.user_participations(connection.user_id)
                delivery.announce_presence(connection.user_id, [p.room_id for p in participations], online=False)
    await delivery.flush_presence()  # a command's loop ends with this call
    return reaped
