"""Staff's removal of a message: the item stays as a tombstone (its key and
seq kept, its content emptied, `deletedAt` set), so history keeps its order
and clients that catch up by seq see the gap filled by a removed message.
The room's previews (METADATA's, and the reference's LASTMESSAGE) stop
showing its text."""

from chat import keys
from chat.domain import Message
from chat.storage import dynamo, schema
from chat.storage.dynamo import ConditionFailed
from chat.storage.messages import message_from

# What a room's preview shows in place of a removed message.
REMOVED_PREVIEW = "Message removed"


async def _message_key(room_id: str, seq: int) -> keys.Key | None:
    """The key of the room's message with this seq (LSI1), or None."""
    items = await dynamo.query_page(
        IndexName=schema.SEQ_INDEX,
        KeyConditionExpression="PK = :pk AND seq = :seq",
        ExpressionAttributeValues=dynamo.values(pk=keys.room_pk(room_id), seq=seq),
        Limit=1,
        ConsistentRead=True,
    )
    return {"PK": items[0]["PK"], "SK": items[0]["SK"]} if items else None


async def message_at(room_id: str, seq: int) -> Message | None:
    """The room's message with this seq, or None."""
    key = await _message_key(room_id, seq)
    values = await dynamo.get(key) if key is not None else None
    return message_from(values) if values else None


async def remove_message(room_id: str, seq: int, *, deleted_at: str) -> tuple[Message, Message] | None:
    """Turn the room's message with this seq into a tombstone. Returns the
    message as it was and as it is now (a message removed before is
    returned as it is, twice), or None if the room has no such message."""
    key = await _message_key(room_id, seq)
    if key is None:
        return None
    try:
        old = await dynamo.update(
            key,
            UpdateExpression="SET content = :empty, deletedAt = :at",
            ConditionExpression="attribute_exists(PK) AND attribute_not_exists(deletedAt)",
            ExpressionAttributeValues=dynamo.values(empty="", at=deleted_at),
            ReturnValues="ALL_OLD",
        )
    except ConditionFailed:
        current = await dynamo.get(key)
        return (message_from(current), message_from(current)) if current else None
    before = message_from(old)
    removed = message_from({**old, "content": "", "deletedAt": deleted_at})
    await _hide_preview(before)
    return before, removed


async def _hide_preview(message: Message) -> None:
    """Have the room's previews stop showing message: METADATA's if it
    shows it, and LASTMESSAGE unless it shows a later message (taking
    message's seq, so a LASTMESSAGE write of it still pending is refused)."""
    try:
        await dynamo.update(
            keys.room(message.room_id),
            UpdateExpression="SET lastMessage = :text",
            ConditionExpression="lastMessageId = :id",
            ExpressionAttributeValues=dynamo.values(text=REMOVED_PREVIEW, id=message.message_id),
        )
    except ConditionFailed:
        pass  # the preview shows a later message
    try:
        await dynamo.update(
            keys.last_message(message.room_id),
            UpdateExpression="SET lastMessage = :text, lastMessageAt = :at, lastSeq = :seq",
            ConditionExpression="attribute_not_exists(lastSeq) OR lastSeq <= :seq",
            ExpressionAttributeValues=dynamo.values(text=REMOVED_PREVIEW, at=message.created_at, seq=message.seq),
        )
    except ConditionFailed:
        pass
