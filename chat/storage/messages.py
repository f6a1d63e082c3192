"""Messages, their per-room sequence, history pages, and the records that
make sends idempotent.

Each room's METADATA holds `lastSeq` and `lastTs`. Taking a seq also takes a
timestamp strictly above the room's last one, so the reference sort key
MESSAGE#{timestamp}#{id} orders messages exactly as seq does, whichever
server's clock took them; LSI1 finds a message by seq."""

from dataclasses import dataclass
from typing import Any

from chat import keys
from chat.domain import Message, iso_from_ms, now_ms
from chat.errors import NotAParticipant, RoomNotFound, StorageUnavailable
from chat.storage import batching, dynamo, schema
from chat.storage.dynamo import ConditionFailed
from chat.storage.rooms import get_room

ALLOCATE_ATTEMPTS = 10
# A room's preview holds the first 100 characters of its last message.
PREVIEW_LENGTH = 100


@dataclass(frozen=True)
class ClientMessage:
    """The record of a send with a clientMessageId; seq is None until the
    message is stored."""

    message_id: str
    lease_until: int
    seq: int | None
    timestamp: int | None


PREVIEW_ATTRIBUTES = ("lastMessage", "lastMessageAt", "lastMessageId")


@dataclass(frozen=True)
class Allocation:
    """A message's place in its room. previous_preview is the room's
    preview before (the attributes it had), to put back if storing fails."""

    seq: int
    timestamp: int
    previous_preview: dict[str, str]


async def allocate(room_id: str, *, sender_id: str | None, message_id: str, content: str) -> Allocation:
    """Take the room's next seq and a timestamp for message_id, and in the
    same write point the room's preview at it and record it as the sender's
    last message (a sender has read their own message). With a sender, this
    is also the participant check: NotAParticipant unless the room lists
    them. Without one (system messages) the room must exist, else
    RoomNotFound. A seq whose message then fails to store is skipped."""
    membership = "contains(participantIds, :sender)" if sender_id is not None else "attribute_exists(PK)"
    update = "SET lastSeq = if_not_exists(lastSeq, :zero) + :one, lastTs = :ts"
    update += ", lastMessage = :text, lastMessageAt = :at, lastMessageId = :id"
    names = {}
    if sender_id is not None:
        update += ", #sent = if_not_exists(lastSeq, :zero) + :one"  # the right side sees the old lastSeq
        names = {"ExpressionAttributeNames": {"#sent": keys.sent_seq_attribute(sender_id)}}
    timestamp = now_ms()
    for _ in range(ALLOCATE_ATTEMPTS):
        extra = {"sender": sender_id} if sender_id is not None else {}
        preview = {"text": content[:PREVIEW_LENGTH], "at": iso_from_ms(timestamp), "id": message_id}
        try:
            old = await dynamo.update(
                keys.room(room_id),
                UpdateExpression=update,
                ConditionExpression=f"{membership} AND (attribute_not_exists(lastTs) OR lastTs < :ts)",
                ExpressionAttributeValues=dynamo.values(zero=0, one=1, ts=timestamp, **preview, **extra),
                ReturnValues="UPDATED_OLD",
                **names,
            )
            previous = {name: old[name] for name in PREVIEW_ATTRIBUTES if name in old}
            return Allocation(int(old.get("lastSeq", 0)) + 1, timestamp, previous)
        except ConditionFailed:
            room = await get_room(room_id)
        if room is None:
            raise NotAParticipant() if sender_id is not None else RoomNotFound()
        if sender_id is not None and sender_id not in room.participant_ids:
            raise NotAParticipant()
        timestamp = max(now_ms(), room.last_ts + 1)  # another send took this millisecond
    raise StorageUnavailable("The room is too busy, try again")


async def put_message(message: Message) -> None:
    """Store the message (its seq taken by allocate). Unconditional, so it
    goes through the group commit: its key holds a fresh uuid4."""
    await batching.put(
        {
            **keys.message(message.room_id, message.timestamp, message.message_id),
            "messageId": message.message_id,
            "chatRoomId": message.room_id,
            "senderId": message.sender_id,
            "content": message.content,
            "messageType": message.message_type,
            "readBy": list(message.read_by),
            "createdAt": message.created_at,
            "timestamp": message.timestamp,
            "seq": message.seq,
            "clientMessageId": message.client_message_id,
        }
    )


async def withdraw_preview(message: Message, previous: dict[str, str]) -> None:
    """Put back the room's preview from before message (whose storing
    failed after allocate pointed the preview at it), unless a later
    message has taken the preview since."""
    restore = [name for name in PREVIEW_ATTRIBUTES if name in previous]
    remove = [name for name in PREVIEW_ATTRIBUTES if name not in previous]
    update = " ".join(
        part
        for part in (
            ("SET " + ", ".join(f"{name} = :{name}" for name in restore)) if restore else "",
            ("REMOVE " + ", ".join(remove)) if remove else "",
        )
        if part
    )
    try:
        await dynamo.update(
            keys.room(message.room_id),
            UpdateExpression=update,
            ConditionExpression="lastMessageId = :failed",
            ExpressionAttributeValues=dynamo.values(
                failed=message.message_id, **{name: previous[name] for name in restore}
            ),
        )
    except ConditionFailed:
        pass  # a later message owns the preview now


def message_from(values: dict[str, Any]) -> Message:
    return Message(
        message_id=values["messageId"],
        room_id=values["chatRoomId"],
        sender_id=values["senderId"],
        content=values["content"],
        message_type=values.get("messageType", "user"),
        timestamp=int(values["timestamp"]),
        seq=int(values["seq"]) if "seq" in values else None,
        read_by=tuple(values.get("readBy", ())),
        client_message_id=values.get("clientMessageId"),
        deleted_at=values.get("deletedAt"),
    )


async def _sort_key_of_seq(room_id: str, seq: int, *, at_or_below: bool) -> str | None:
    """Sort key of the message with the greatest seq <= seq (at_or_below)
    or the smallest seq >= seq; None if there is none."""
    items = await dynamo.query_page(
        IndexName=schema.SEQ_INDEX,
        KeyConditionExpression=f"PK = :pk AND seq {'<=' if at_or_below else '>='} :seq",
        ExpressionAttributeValues=dynamo.values(pk=keys.room_pk(room_id), seq=seq),
        ScanIndexForward=not at_or_below,
        Limit=1,
        ConsistentRead=True,
    )
    return items[0]["SK"] if items else None


async def messages_page(
    room_id: str, *, after_seq: int | None = None, before_seq: int | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """Up to `limit` messages, oldest first, and whether more lie beyond in
    the direction of paging: after after_seq (oldest first), before
    before_seq, or the newest ones. Messages without seq (written by the
    reference system) sort by their key like the rest."""
    lower, upper = keys.MESSAGE_PREFIX, keys.MESSAGE_RANGE_END
    forward = after_seq is not None
    if after_seq is not None:
        lower = await _sort_key_of_seq(room_id, after_seq, at_or_below=True) or lower
    elif before_seq is not None:
        upper = await _sort_key_of_seq(room_id, before_seq, at_or_below=False) or upper
    items = await dynamo.query_page(
        KeyConditionExpression="PK = :pk AND SK BETWEEN :lower AND :upper",
        ExpressionAttributeValues=dynamo.values(pk=keys.room_pk(room_id), lower=lower, upper=upper),
        ScanIndexForward=forward,
        Limit=limit + 2,  # the bound itself may come back, and one more tells "has more"
        ConsistentRead=True,
    )
    items = [item for item in items if item["SK"] not in (lower, upper)]
    has_more = len(items) > limit
    page = [message_from(item) for item in items[:limit]]
    return (page if forward else page[::-1]), has_more


# --- idempotent sends -----------------------------------------------------------------


async def reserve_client_message(
    user_id: str, room_id: str, client_message_id: str, *, message_id: str, lease_ms: int, ttl: int
) -> ClientMessage | None:
    """Claim (user, room, clientMessageId) for message_id. Returns None if
    claimed, else the existing record."""
    key = keys.client_message(user_id, room_id, client_message_id)
    now = now_ms()
    try:
        await dynamo.put(
            {**key, "messageId": message_id, "leaseUntil": now + lease_ms, "ttl": ttl},
            ConditionExpression="attribute_not_exists(PK) OR #ttl <= :now",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=dynamo.values(now=now // 1000),
        )
        return None
    except ConditionFailed:
        values = await dynamo.get(key)
    if values is None:
        return await reserve_client_message(
            user_id, room_id, client_message_id, message_id=message_id, lease_ms=lease_ms, ttl=ttl
        )
    return ClientMessage(
        message_id=values["messageId"],
        lease_until=int(values["leaseUntil"]),
        seq=int(values["seq"]) if "seq" in values else None,
        timestamp=int(values["timestamp"]) if "timestamp" in values else None,
    )


async def take_over_client_message(
    user_id: str, room_id: str, client_message_id: str, *, stale_id: str, message_id: str, lease_ms: int
) -> bool:
    """Take a record whose send died before storing its message."""
    now = now_ms()
    try:
        await dynamo.update(
            keys.client_message(user_id, room_id, client_message_id),
            UpdateExpression="SET messageId = :new, leaseUntil = :lease",
            ConditionExpression="messageId = :old AND attribute_not_exists(seq) AND leaseUntil < :now",
            ExpressionAttributeValues=dynamo.values(new=message_id, lease=now + lease_ms, old=stale_id, now=now),
        )
    except ConditionFailed:
        return False
    return True


async def commit_client_message(user_id: str, client_message_id: str, message: Message, *, ttl: int) -> None:
    """Record that the claimed send stored `message`; later retries get its
    ack. Called once the message is stored, so a record with a seq always
    names a stored message. Unconditional, so it goes through the group
    commit (under load it shares a call instead of costing one per send):
    the claim's lease outlasts the send's storage calls and this write
    (chat.storage.batching bounds both), so no retry has taken the claim over."""
    await batching.put(
        {
            **keys.client_message(user_id, message.room_id, client_message_id),
            "messageId": message.message_id,
            "leaseUntil": 0,  # with a seq, the record is final: no lease to keep
            "ttl": ttl,
            "seq": message.seq,
            "timestamp": message.timestamp,
        }
    )


async def release_client_message(user_id: str, room_id: str, client_message_id: str, message_id: str) -> None:
    """Give up a claim whose message was not stored, so a retry can proceed."""
    try:
        await dynamo.delete(
            keys.client_message(user_id, room_id, client_message_id),
            ConditionExpression="messageId = :id AND attribute_not_exists(seq)",
            ExpressionAttributeValues=dynamo.values(id=message_id),
        )
    except ConditionFailed:
        pass
