"""What staff see of a user and a room in the admin (reads only): the
user's rooms, open connections and presence, and a room's messages. Async,
with sync twins for the admin, which is sync (chat.storage.run_sync)."""

import time
from dataclasses import dataclass

from chat import storage
from chat.domain import Connection, Message, Room, RoomSummary
from chat.errors import RoomNotFound


@dataclass(frozen=True)
class UserOverview:
    rooms: list[RoomSummary]  # newest activity first
    connections: list[Connection]  # oldest first
    online: bool


@dataclass(frozen=True)
class RoomMessages:
    room: Room
    messages: list[Message]  # oldest first, removed ones included
    has_more: bool  # older messages exist (page on with before_seq)


async def user_overview(user_id: str) -> UserOverview:
    now = int(time.time())
    participations = await storage.user_participations(user_id)
    summaries = await storage.room_summaries([participation.room_id for participation in participations])
    # A participation item may outlive its membership: METADATA decides.
    rooms = [summary for summary in summaries.values() if user_id in summary.room.participant_ids]
    rooms.sort(key=lambda summary: summary.last_message_at or summary.room.created_at, reverse=True)
    connections = sorted(await storage.user_connections(user_id, now=now), key=lambda c: c.connected_at)
    online = bool(await storage.online_users([user_id], now=now))
    return UserOverview(rooms=rooms, connections=connections, online=online)


async def room_messages(room_id: str, *, before_seq: int | None = None, limit: int = 50) -> RoomMessages:
    """A page of the room's messages, newest last. Raises RoomNotFound."""
    room = await storage.get_room(room_id)
    if room is None:
        raise RoomNotFound()
    messages, has_more = await storage.messages_page(room_id, before_seq=before_seq, limit=limit)
    return RoomMessages(room=room, messages=messages, has_more=has_more)


def user_overview_sync(user_id: str) -> UserOverview:
    return storage.run_sync(user_overview, user_id)


def room_messages_sync(room_id: str, *, before_seq: int | None = None) -> RoomMessages:
    return storage.run_sync(room_messages, room_id, before_seq=before_seq)
