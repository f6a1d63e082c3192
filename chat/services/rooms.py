"""Rooms: creation, listing, activities, leaving."""

import logging
import time
import uuid
from dataclasses import dataclass

from chat import delivery, events, limits, storage
from chat.domain import Identity, Room, RoomSummary, iso_from_ms, now_ms
from chat.errors import ActivityTaken, InvalidRequest, NotAParticipant, RoomNotFound
from chat.services.messages import send_system_message

log = logging.getLogger(__name__)
MAX_PARTICIPANTS = 50


@dataclass(frozen=True)
class RoomListing:
    summary: RoomSummary
    read_seq: int
    online_participant_ids: list[str]

    @property
    def unread_count(self) -> int:
        # Messages after the watermark; own ones never count, because
        # sending moves the sender's watermark to the message.
        return max(0, self.summary.room.last_seq - self.read_seq)


def _now_iso() -> str:
    return iso_from_ms(now_ms())


def _members(participant_ids: list[str], creator_id: str | None) -> list[str]:
    """The room's distinct participants, the creator last unless listed."""
    given = participant_ids if creator_id is None else [*participant_ids, creator_id]
    members = list(dict.fromkeys(given))
    if not 1 <= len(members) <= MAX_PARTICIPANTS:
        raise InvalidRequest(f"a room has 1-{MAX_PARTICIPANTS} participants")
    return members


async def create_room(
    *,
    participant_ids: list[str],
    name: str | None = None,
    activity_id: str | None = None,
    creator_id: str | None = None,
) -> Room:
    """Create a room of 1-50 distinct participants (the creator added if
    missing; "direct" for exactly 2) and start delivering it to their open
    connections, which get a `room` frame. Precondition: the ids are valid
    (chat.validation.create_room); InvalidRequest for too few or too many.
    A creator is held to USER_ROOMS_PER_HOUR (RateLimited); trusted callers
    pass none."""
    members = _members(participant_ids, creator_id)
    if creator_id is not None:
        await limits.check_room_creation(creator_id)
    room_id = uuid.uuid4().hex
    if activity_id is not None and await storage.claim_activity(activity_id, room_id) != room_id:
        raise ActivityTaken()
    room = Room(
        room_id=room_id,
        participant_ids=tuple(members),
        type="direct" if len(members) == 2 else "group",
        created_at=_now_iso(),
        name=name or None,
        activity_id=activity_id,
    )
    if not await storage.put_room(room):
        raise ActivityTaken()  # a joiner of the activity created its room first
    await delivery.to_users_quietly(members, events.room_joined(room))
    return room


async def list_rooms(user_id: str) -> list[RoomListing]:
    """The user's rooms, newest activity first. Cost: one query, then batch
    reads of 100 keys, whatever the rooms' history."""
    participations = await storage.user_participations(user_id)
    read_seq = {p.room_id: p.read_seq for p in participations}
    summaries = await storage.room_summaries(list(read_seq))
    mine = [s for s in summaries.values() if user_id in s.room.participant_ids]
    everyone = list(dict.fromkeys(uid for s in mine for uid in s.room.participant_ids))
    online = await storage.online_users(everyone, now=int(time.time())) if everyone else set()
    listings = [
        RoomListing(
            s,
            max(read_seq[s.room.room_id], s.room.sent_seq(user_id)),  # sending reads the room up to there
            [uid for uid in s.room.participant_ids if uid in online],
        )
        for s in mine
    ]
    listings.sort(key=lambda r: r.summary.last_message_at or r.summary.room.created_at, reverse=True)
    return listings


async def join_activity(identity: Identity, activity_id: str) -> tuple[Room, bool]:
    """Join the activity's group room, creating it on first join. Returns
    the room and whether the caller was added (False: already a member).
    Raises RoomFull for the 51st member, and RateLimited when creating the
    room would exceed the caller's USER_ROOMS_PER_HOUR (a fresh activity id
    per join would otherwise create rooms without limit). Precondition:
    activity_id is valid (chat.validation.activity_id)."""
    room_id = await storage.activity_room_id(activity_id)
    if room_id is None:
        await limits.check_room_creation(identity.user_id)
        room_id = await storage.claim_activity(activity_id, uuid.uuid4().hex)
    try:
        added = await storage.add_participant(room_id, identity.user_id, joined_at=_now_iso(), limit=MAX_PARTICIPANTS)
    except RoomNotFound:
        # First joiner (or one whose creator died after claiming): create it.
        first = Room(room_id, (identity.user_id,), "group", _now_iso(), None, activity_id)
        if not await storage.put_room(first):
            return await join_activity(identity, activity_id)
        await send_system_message(room_id=room_id, content="Room created")
        added = True
    room = await storage.get_room(room_id)
    if room is None:  # deleted between the join and this read
        raise RoomNotFound()
    if added:
        await send_system_message(room_id=room_id, content=f"{identity.nickname} joined")
        await delivery.to_users_quietly([identity.user_id], events.room_joined(room))
    return room, added


async def leave_room(identity: Identity, room_id: str, *, named: bool = True) -> None:
    """Remove the caller from the room; their connections stop receiving it.
    The room hears "<nickname> left", or, unless named, only that a
    participant left (an unverified user's nickname reaches nobody).
    Raises NotAParticipant."""
    if not await storage.remove_participant(room_id, identity.user_id):
        raise NotAParticipant()
    await delivery.to_users_quietly([identity.user_id], events.room_left(room_id))
    content = f"{identity.nickname} left" if named else "A participant left"
    await send_system_message(room_id=room_id, content=content)
