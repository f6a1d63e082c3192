"""Connection lifecycle: registry, presence, expiry (reaping is in
chat.services.reaping)."""

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import cast

from django.conf import settings

from chat import delivery, limits, storage
from chat.domain import Connection, Identity, Participation, iso_from_ms, now_ms
from chat.errors import DeliveryUnavailable, StorageUnavailable, UserSuspended
from chat.services.liveness import liveness
from chat.services.profiles import status_on_connect

log = logging.getLogger(__name__)
# Cleanups under way (asyncio keeps only weak references to tasks).
_background: set["asyncio.Task[None]"] = set()


@dataclass(frozen=True)
class OpenedConnection:
    connection: Connection
    verification: str
    room_ids: list[str]


async def admit_connection(
    *, identity: Identity, connection_id: str, joining: Awaitable[None]
) -> OpenedConnection | None:
    """Claim one of the user's USER_MAX_SOCKETS slots for a new socket while
    joining (its user's group, joined before the verification status is
    read so that a decision made in between still reaches the socket), then
    open_connection. None when every slot is taken: nothing is written.
    Raises StorageUnavailable, DeliveryUnavailable or UserSuspended, having
    given the slot back."""
    try:
        _, admitted = await asyncio.gather(
            joining, limits.claim_socket(user_id=identity.user_id, socket_id=connection_id)
        )
        if not admitted:
            return None
        return await open_connection(identity=identity, connection_id=connection_id)
    except (StorageUnavailable, DeliveryUnavailable, UserSuspended):
        await limits.release_socket(user_id=identity.user_id, socket_id=connection_id)
        raise


async def open_connection(*, identity: Identity, connection_id: str) -> OpenedConnection:
    """Register a new connection of an authenticated user: profile (created
    pending on first sight), Connection and UserConnection items, presence,
    and the rooms it must receive. The four are independent, so they run at
    once, within CONNECT_DEADLINE_SECONDS. Raises StorageUnavailable (what
    was written of the connection is deleted, in the background)."""
    now = now_ms()
    with storage.deadline(settings.CONNECT_DEADLINE_SECONDS):
        # The process's first connection also writes its first heartbeat.
        owner = await liveness().current_owner()
        connection = Connection(
            connection_id=connection_id,
            user_id=identity.user_id,
            connected_at=iso_from_ms(now),
            ttl=now // 1000 + settings.CONNECTION_TTL_SECONDS,
            owner=owner,
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
        forgetting = storage.spawn(_forget_quietly(connection))
        _background.add(forgetting)
        forgetting.add_done_callback(_background.discard)
        raise failures[0]
    # Every outcome is a result now (failures were raised above).
    status, _, participations, first = cast(tuple[str, None, list[Participation], bool], tuple(outcomes))
    room_ids = [participation.room_id for participation in participations]
    if first:
        delivery.announce_presence(identity.user_id, room_ids, online=True)
    return OpenedConnection(connection=connection, verification=status, room_ids=room_ids)


async def _forget_quietly(connection: Connection) -> None:
    """Undo a registration that could not complete; what stays is reaped."""
    try:
        await forget_connection(connection)
    except StorageUnavailable:
        log.warning("connection %s left for the reaper", connection.connection_id)


async def forget_connection(connection: Connection) -> None:
    """Delete the connection's registry items and presence without telling
    its user's rooms: for a connection that never announced itself, or
    whose reaper did. Raises StorageUnavailable."""
    await storage.delete_connection(connection.user_id, connection.connection_id)
    await storage.set_offline(connection, now=int(time.time()))


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
