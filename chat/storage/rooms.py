"""Rooms, their participants, read watermarks and activity links.

METADATA's participantIds is the truth about membership; a participation
item is the user-side index of it (room lists, subscriptions). Writes are
ordered so that an index entry never outlives or precedes the membership
it stands for, except for a brand-new room, whose messages cannot exist
before its METADATA does."""

from typing import Any

from chat import keys
from chat.domain import Participation, Room, RoomSummary
from chat.errors import RoomFull, RoomNotFound, StorageUnavailable
from chat.storage import dynamo
from chat.storage.dynamo import ConditionFailed


def _participation_item(user_id: str, room_id: str, joined_at: str) -> dict[str, Any]:
    return {
        **keys.participation(user_id, room_id),
        "chatRoomId": room_id,
        "participantId": user_id,
        "joinedAt": joined_at,
        "GSI1PK": keys.user_rooms_gsi_pk(user_id),
        "GSI1SK": joined_at,
    }


async def put_room(room: Room) -> bool:
    """Write the participations, then the METADATA item that makes the room
    exist. Returns False (and writes no METADATA) if the room existed."""
    await dynamo.batch_put(
        [_participation_item(user_id, room.room_id, room.created_at) for user_id in room.participant_ids]
    )
    item = {
        **keys.room(room.room_id),
        "chatRoomId": room.room_id,
        "name": room.name,
        "participantIds": list(room.participant_ids),
        "type": room.type,
        "activityId": room.activity_id,
        "createdAt": room.created_at,
    }
    try:
        await dynamo.put(item, ConditionExpression="attribute_not_exists(PK)")
    except ConditionFailed:
        # Someone else made this room (an activity's, in a race): take back
        # the participations of anyone it does not list.
        existing = await get_room(room.room_id)
        listed = set(existing.participant_ids) if existing else set()
        for user_id in set(room.participant_ids) - listed:
            await dynamo.delete(keys.participation(user_id, room.room_id))
        return False
    return True


def _room_from(values: dict[str, Any]) -> Room:
    return Room(
        room_id=values["chatRoomId"],
        participant_ids=tuple(values.get("participantIds", ())),
        type=values.get("type", "group"),
        created_at=values.get("createdAt", ""),
        name=values.get("name"),
        activity_id=values.get("activityId"),
        last_seq=int(values.get("lastSeq", 0)),
        last_ts=int(values.get("lastTs", 0)),
        sent_seqs={
            name.removeprefix(keys.SENT_SEQ_PREFIX): int(value)
            for name, value in values.items()
            if name.startswith(keys.SENT_SEQ_PREFIX)
        },
        last_message=values.get("lastMessage"),
        last_message_at=values.get("lastMessageAt"),
    )


async def get_room(room_id: str) -> Room | None:
    values = await dynamo.get(keys.room(room_id))
    return _room_from(values) if values else None


async def user_participations(user_id: str) -> list[Participation]:
    """The user's participation items (some may be stale: check METADATA)."""
    items = await dynamo.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=dynamo.values(pk=keys.user_pk(user_id), prefix=keys.ROOM_PREFIX),
        ConsistentRead=True,
    )
    return [
        Participation(
            room_id=keys.room_id_from_sk(item["SK"]),
            user_id=user_id,
            joined_at=item.get("joinedAt", ""),
            read_seq=int(item.get("readSeq", 0)),
        )
        for item in items
    ]


async def room_summaries(room_ids: list[str]) -> dict[str, RoomSummary]:
    """METADATA of each existing room, in batch reads, with its preview
    (from LASTMESSAGE for rooms whose METADATA has none: the reference's)."""
    wanted = [key for room_id in room_ids for key in (keys.room(room_id), keys.last_message(room_id))]
    found = await dynamo.batch_get(wanted)
    summaries = {}
    for room_id in room_ids:
        metadata = found.get(dynamo.key_id(keys.room(room_id)))
        if metadata is None:
            continue
        room = _room_from(metadata)
        if room.last_message_at is not None and room.last_message is not None:
            summaries[room_id] = RoomSummary(room, room.last_message, room.last_message_at)
        else:
            preview = found.get(dynamo.key_id(keys.last_message(room_id)), {})
            at = room.last_message_at or preview.get("lastMessageAt")
            summaries[room_id] = RoomSummary(room, preview.get("lastMessage"), at)
    return summaries


async def read_seqs(room: Room, user_ids: list[str]) -> dict[str, int]:
    """Each user's read watermark in the room: the greater of what they
    marked read and their last message (0 when neither)."""
    found = await dynamo.batch_get([keys.participation(user_id, room.room_id) for user_id in user_ids])
    marked = {
        user_id: int(found.get(dynamo.key_id(keys.participation(user_id, room.room_id)), {}).get("readSeq", 0))
        for user_id in user_ids
    }
    return {user_id: max(marked[user_id], room.sent_seq(user_id)) for user_id in user_ids}


async def advance_read(user_id: str, room_id: str, seq: int) -> tuple[int, bool]:
    """Move the user's marked-read seq (their participation's readSeq)
    forward to seq. Returns it and whether it moved. Precondition: the user
    participates in the room."""
    try:
        await dynamo.update(
            keys.participation(user_id, room_id),
            UpdateExpression="SET readSeq = :seq",
            ConditionExpression="attribute_exists(PK) AND (attribute_not_exists(readSeq) OR readSeq < :seq)",
            ExpressionAttributeValues=dynamo.values(seq=seq),
        )
    except ConditionFailed:
        current = await dynamo.get(keys.participation(user_id, room_id)) or {}
        return int(current.get("readSeq", 0)), False
    return seq, True


async def add_participant(room_id: str, user_id: str, *, joined_at: str, limit: int) -> bool:
    """Add user_id to the room; returns False if already a participant.
    Raises RoomNotFound, or RoomFull at `limit` participants. METADATA
    changes first: a crash before the participation is written leaves a
    member who is not yet subscribed, never a subscriber who is no member;
    joining again repairs it."""
    try:
        await dynamo.update(
            keys.room(room_id),
            UpdateExpression="SET participantIds = list_append(participantIds, :new)",
            ConditionExpression=(
                "attribute_exists(PK) AND NOT contains(participantIds, :user) AND size(participantIds) < :limit"
            ),
            ExpressionAttributeValues=dynamo.values(new=[user_id], user=user_id, limit=limit),
        )
        added = True
    except ConditionFailed:
        room = await get_room(room_id)
        if room is None:
            raise RoomNotFound() from None
        if user_id not in room.participant_ids:
            raise RoomFull() from None
        added = False
    try:
        await dynamo.put(
            _participation_item(user_id, room_id, joined_at), ConditionExpression="attribute_not_exists(PK)"
        )
    except ConditionFailed:
        pass  # there already, with its read watermark
    return added


async def remove_participant(room_id: str, user_id: str) -> bool:
    """Remove user_id from the room; returns False if not a participant.
    The participation goes first, so delivery stops before membership does."""
    await dynamo.delete(keys.participation(user_id, room_id))
    for _ in range(10):
        room = await get_room(room_id)
        if room is None or user_id not in room.participant_ids:
            return False
        index = room.participant_ids.index(user_id)
        try:
            await dynamo.update(
                keys.room(room_id),
                UpdateExpression=f"REMOVE participantIds[{index}], #sent",
                ConditionExpression=f"participantIds[{index}] = :user",
                ExpressionAttributeNames={"#sent": keys.sent_seq_attribute(user_id)},
                ExpressionAttributeValues=dynamo.values(user=user_id),
            )
        except ConditionFailed:
            continue  # the list changed under us: read it again
        return True
    raise StorageUnavailable("The room is changing too fast, try again")


async def claim_activity(activity_id: str, room_id: str) -> str:
    """Make room_id the activity's room unless it has one; returns the
    activity's room id either way. The reference's activity-to-room link
    (ACTIVITY#/CHATROOM#) is written for its readers; this server reads the
    ACTIVITY#/METADATA item, which is created once and so decides races."""
    try:
        await dynamo.put(
            {**keys.activity(activity_id), "chatRoomId": room_id}, ConditionExpression="attribute_not_exists(PK)"
        )
    except ConditionFailed:
        existing = await activity_room_id(activity_id)
        if existing is None:  # claimed, then gone: the claimer's write cannot be undone, so this is storage trouble
            raise StorageUnavailable("The activity is changing, try again") from None
        return existing
    await dynamo.put({**keys.activity_room(activity_id, room_id), "chatRoomId": room_id, "activityId": activity_id})
    return room_id


async def activity_room_id(activity_id: str) -> str | None:
    values = await dynamo.get(keys.activity(activity_id))
    return str(values["chatRoomId"]) if values else None
