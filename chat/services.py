"""Actions on chat state: each validates what it is given, changes storage,
then emits events. Used alike by the consumer, management commands and the
admin; async, with sync twins for sync callers."""
import logging
import time
import uuid
from dataclasses import dataclass, replace

from asgiref.sync import async_to_sync
from django.conf import settings

from chat import delivery, events, storage, validation, verification
from chat.auth import Identity
from chat.blocking import run_blocking, run_orm
from chat.errors import InvalidRequest, StorageUnavailable
from chat.storage import Connection, Message, Room

log = logging.getLogger(__name__)
MAX_PARTICIPANTS = 50
SYSTEM_SENDER = "system"


@dataclass(frozen=True)
class OpenedConnection:
    connection: Connection
    verification: str
    room_ids: list[str]


def _new_connection(user_id: str, connection_id: str) -> Connection:
    now = storage.now_ms()
    ttl = now // 1000 + settings.CONNECTION_TTL_SECONDS
    return Connection(connection_id=connection_id, user_id=user_id, connected_at=storage.iso_from_ms(now), ttl=ttl)


async def open_connection(*, identity: Identity, connection_id: str) -> OpenedConnection:
    """Register a new connection of an authenticated user: profile (created
    pending on first sight), Connection and UserConnection items, and the
    rooms it must receive. Raises StorageUnavailable."""
    status = await run_orm(verification.ensure_profile, user_id=identity.user_id, nickname=identity.nickname)
    connection = _new_connection(identity.user_id, connection_id)
    await run_blocking(storage.put_connection, connection)
    room_ids = await run_blocking(storage.user_room_ids, identity.user_id)
    return OpenedConnection(connection=connection, verification=status, room_ids=room_ids)


async def refresh_connection(connection: Connection) -> Connection:
    """Push the connection's expiry forward; returns the refreshed record."""
    refreshed = replace(connection, ttl=int(time.time()) + settings.CONNECTION_TTL_SECONDS)
    await run_blocking(storage.refresh_connection, refreshed)
    return refreshed


async def close_connection(connection: Connection) -> None:
    await run_blocking(storage.delete_connection, connection.user_id, connection.connection_id)


async def send_message(*, sender_id: str, request: validation.SendMessage, origin_channel: str) -> Message:
    """Store a user's message and deliver it to every connection of the
    room's participants except origin_channel, which shows it itself.
    Precondition: the sender is verified. Raises NotAParticipant (also for a
    room that does not exist) or StorageUnavailable; once this returns, the
    message is durable."""
    seq = await run_blocking(storage.next_seq, request.room_id, sender_id=sender_id)
    message = Message(
        message_id=str(uuid.uuid4()),
        room_id=request.room_id,
        sender_id=sender_id,
        content=request.content,
        message_type="user",
        timestamp=storage.now_ms(),
        seq=seq,
        read_by=(sender_id,),
        client_message_id=request.client_message_id,
    )
    await run_blocking(storage.put_message, message)
    await _publish(message, skip_channel=origin_channel)
    return message


async def send_system_message(*, room_id: str, content: str) -> Message:
    """Store and deliver a system message (senderId "system", readBy []).
    Raises RoomNotFound, InvalidRequest, MessageTooLong, StorageUnavailable."""
    room_id, content = validation.room_id(room_id), validation.content(content)
    seq = await run_blocking(storage.next_seq, room_id, sender_id=None)
    message = Message(
        message_id=str(uuid.uuid4()),
        room_id=room_id,
        sender_id=SYSTEM_SENDER,
        content=content,
        message_type="system",
        timestamp=storage.now_ms(),
        seq=seq,
    )
    await run_blocking(storage.put_message, message)
    await _publish(message)
    return message


async def _publish(message: Message, *, skip_channel: str | None = None) -> None:
    """After a message is stored: move the room's preview and deliver it live.
    Neither may undo the send, so failures are logged, not raised: the preview
    is fixed by the next message, and clients catch up from history."""
    try:
        await run_blocking(storage.update_last_message, message)
    except StorageUnavailable:
        log.warning("LASTMESSAGE of room %s not updated for seq %s", message.room_id, message.seq)
    try:
        await delivery.to_room(message.room_id, events.deliver(events.message_frame(message), skip_channel=skip_channel))
    except Exception:
        log.exception("live delivery of %s in room %s failed", message.message_id, message.room_id)


async def create_room(*, participant_ids: list[str], name: str | None = None, activity_id: str | None = None) -> Room:
    """Create a room of 1-50 distinct participants ("direct" for exactly 2)
    and start delivering it to their open connections."""
    members = list(dict.fromkeys(validation.user_id(user_id) for user_id in participant_ids))
    if not 1 <= len(members) <= MAX_PARTICIPANTS:
        raise InvalidRequest(f"a room has 1-{MAX_PARTICIPANTS} participants")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise InvalidRequest("name must be a string of at most 100 characters")
    if activity_id is not None:
        validation.room_id(activity_id, field="activityId")
    room = Room(
        room_id=uuid.uuid4().hex,
        participant_ids=tuple(members),
        type="direct" if len(members) == 2 else "group",
        created_at=storage.iso_from_ms(storage.now_ms()),
        name=name or None,
        activity_id=activity_id,
    )
    await run_blocking(storage.put_room, room)
    await delivery.to_users_quietly(members, events.room_joined(room.room_id))
    return room


async def reap_expired_connections() -> int:
    """Delete both items of every expired connection and close it if it is
    still open somewhere. Returns how many were reaped."""
    now = int(time.time())
    expired = await run_blocking(lambda: list(storage.expired_connections(now=now)))
    reaped = 0
    for connection in expired:
        if await run_blocking(storage.delete_expired_connection, connection, now=now):
            reaped += 1
            await delivery.to_users_quietly([connection.user_id], events.connection_reaped(connection.connection_id))
    return reaped


create_room_sync = async_to_sync(create_room)
send_system_message_sync = async_to_sync(send_system_message)
reap_expired_connections_sync = async_to_sync(reap_expired_connections)
