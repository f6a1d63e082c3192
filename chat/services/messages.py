"""Sending, history and read state."""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat import delivery, events, limits, metrics, storage, validation
from chat.domain import Identity, Message, Room, now_ms
from chat.errors import NotAParticipant, StorageUnavailable
from chat.events import Ack
from chat.ratelimit import Throttle
from chat.storage import Allocation

log = logging.getLogger(__name__)
SYSTEM_SENDER = "system"
ADMIN_GROUP = "admin"
CLIENT_MESSAGE_TTL = 86400
# One typing event per user and room every 2 s, in this process.
typing_throttle = Throttle(2.0)
# Longer than a send's storage calls can take with their retries (each at
# most DYNAMODB_RETRY_SECONDS plus a read timeout; a batched write starts
# within 8 s), so a live send is never taken over.
CLAIM_LEASE_MS = 40_000
CLAIM_WAIT_SECONDS = 3.0
# Best-effort writes under way (asyncio keeps only weak references to tasks).
_background: set["asyncio.Task[None]"] = set()


@dataclass(frozen=True)
class SendResult:
    """message is None when the send repeated an earlier one (same
    clientMessageId), which was neither stored nor delivered again."""

    ack: Ack
    message: Message | None


@dataclass(frozen=True)
class HistoryPage:
    room: Room
    messages: list[events.MessageData]
    has_more: bool


async def send_message(*, sender_id: str, request: validation.SendMessage, origin_channel: str | None) -> SendResult:
    """Store a user's message, move the sender's read watermark to it, and
    deliver it to every connection of the room's participants except
    origin_channel, which shows it itself. Precondition: the sender is
    verified. Raises RateLimited (the user's sends over all sockets and
    processes, before anything is written), NotAParticipant (also for a room
    that does not exist) or StorageUnavailable, at the latest
    SEND_DEADLINE_SECONDS after the call; once this returns, the message is
    durable."""
    await limits.check_send(sender_id)
    with storage.deadline(settings.SEND_DEADLINE_SECONDS):
        return await _send(sender_id, request, origin_channel)


async def _send(sender_id: str, request: validation.SendMessage, origin_channel: str | None) -> SendResult:
    message_id = str(uuid.uuid4())
    cid = request.client_message_id
    ttl = int(time.time()) + CLIENT_MESSAGE_TTL
    if cid is not None:
        earlier = await _claim(sender_id, request.room_id, cid, message_id, ttl)
        if earlier is not None:
            return SendResult(ack=earlier, message=None)
    try:
        allocation = await storage.allocate(
            request.room_id, sender_id=sender_id, message_id=message_id, content=request.content
        )
    except Exception:
        # Nothing was stored: free the id for the client's retry.
        if cid is not None:
            _later(storage.release_client_message, sender_id, request.room_id, cid, message_id)
        raise
    message = Message(
        message_id,
        request.room_id,
        sender_id,
        request.content,
        "user",
        allocation.timestamp,
        allocation.seq,
        (sender_id,),
        cid,
    )
    # If this put fails it may still have landed, so the claim is kept: a
    # retry waits for the lease rather than risk storing the message twice.
    await _store(message, allocation)
    if cid is not None:
        _later(storage.commit_client_message, sender_id, cid, message, ttl=ttl)
    await _deliver(message, skip_channel=origin_channel)
    ack = Ack(message_id, cid, request.room_id, allocation.seq, allocation.timestamp)
    return SendResult(ack=ack, message=message)


async def _store(message: Message, allocation: Allocation) -> None:
    """Put the message whose seq allocate took (and pointed the room's
    preview at). If that fails, raise at once: the earlier preview is put
    back in the background, with a retry budget of its own (the send's
    deadline may have none left). Once stored, LASTMESSAGE follows (later,
    off the ack path)."""
    try:
        await storage.put_message(message)
    except StorageUnavailable:
        _later(storage.withdraw_preview, message, allocation.previous_preview)
        raise
    metrics.MESSAGES_STORED.labels(message.message_type).inc()
    storage.note_last_message(message)


async def _claim(user_id: str, room_id: str, cid: str, message_id: str, ttl: int) -> Ack | None:
    """Claim the clientMessageId for message_id. Returns None when claimed,
    or the earlier send's (duplicate) ack once it has stored its message. A
    claim whose sender died is taken over when its lease runs out."""
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while True:
        earlier = await storage.reserve_client_message(
            user_id, room_id, cid, message_id=message_id, lease_ms=CLAIM_LEASE_MS, ttl=ttl
        )
        if earlier is None:
            return None
        if earlier.seq is not None and earlier.timestamp is not None:
            return Ack(earlier.message_id, cid, room_id, earlier.seq, earlier.timestamp, duplicate=True)
        if earlier.lease_until < now_ms():
            taken = await storage.take_over_client_message(
                user_id, room_id, cid, stale_id=earlier.message_id, message_id=message_id, lease_ms=CLAIM_LEASE_MS
            )
            if taken:
                return None
        if time.monotonic() > deadline:
            raise StorageUnavailable("The same message is still being sent, retry shortly")
        await asyncio.sleep(0.05)


async def send_system_message(*, room_id: str, content: str) -> Message:
    """Store and deliver a system message (senderId "system", readBy []).
    Raises RoomNotFound, InvalidRequest, MessageTooLong, StorageUnavailable."""
    room_id, content = validation.room_id(room_id), validation.content(content)
    message_id = str(uuid.uuid4())
    allocation = await storage.allocate(room_id, sender_id=None, message_id=message_id, content=content)
    message = Message(message_id, room_id, SYSTEM_SENDER, content, "system", allocation.timestamp, allocation.seq)
    await _store(message, allocation)
    await _deliver(message)
    return message


async def _deliver(message: Message, *, skip_channel: str | None = None) -> None:
    """Deliver a stored message live. That may not undo the send, so a
    failure is logged, not raised: clients catch up from history."""
    try:
        await delivery.to_room(
            message.room_id, events.deliver(events.message_frame(message), skip_channel=skip_channel)
        )
    except Exception:
        log.exception("live delivery of %s in room %s failed", message.message_id, message.room_id)


def _later(fn: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any) -> None:
    """Best-effort storage work after a message is durable, or cleanup after
    a failed send: it runs on its own, with the full retry budget, so it
    neither delays the answer nor dies with the send's deadline. A failure
    is logged, never turned into a failed send."""

    async def apply() -> None:
        try:
            await fn(*args, **kwargs)
        except StorageUnavailable:
            log.warning("%s%r not applied", fn.__name__, args)

    task = storage.spawn(apply())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def readable_room(identity: Identity, room_id: str) -> Room:
    """The room, if identity may read it: a participant, or a member of the
    issuer's `admin` group. Raises NotAParticipant otherwise."""
    room = await storage.get_room(room_id)
    if room is None or (identity.user_id not in room.participant_ids and ADMIN_GROUP not in identity.groups):
        raise NotAParticipant()
    return room


async def history(
    identity: Identity, room_id: str, *, after_seq: int | None = None, before_seq: int | None = None, limit: int = 50
) -> HistoryPage:
    """A page of the room's messages, oldest first, each with readBy derived
    from the participants' read watermarks (the sender always included)."""
    room = await readable_room(identity, room_id)
    messages, has_more = await storage.messages_page(room_id, after_seq=after_seq, before_seq=before_seq, limit=limit)
    watermarks = await storage.read_seqs(room, list(room.participant_ids)) if messages else {}
    return HistoryPage(room, [_with_read_by(message, watermarks) for message in messages], has_more)


def _with_read_by(message: Message, watermarks: dict[str, int]) -> events.MessageData:
    if message.seq is None:  # written by the reference system: keep its own list
        return events.message_data(message, read_by=message.read_by)
    readers = [user for user, seq in watermarks.items() if seq >= message.seq and user != message.sender_id]
    sender = [message.sender_id] if message.message_type == "user" else []
    return events.message_data(message, read_by=sender + readers)


async def mark_read(*, user_id: str, room_id: str, seq: int) -> tuple[int, bool]:
    """Move the user's read watermark forward to seq (capped at the room's
    last seq) and tell the room's members. Returns the watermark and whether
    it moved. Raises NotAParticipant."""
    room = await storage.get_room(room_id)
    if room is None or user_id not in room.participant_ids:
        raise NotAParticipant()
    target = min(seq, room.last_seq)
    if target <= room.sent_seq(user_id):  # read already, by sending at or after it
        current = await storage.read_seqs(room, [user_id])
        return current[user_id], False
    marked, moved = await storage.advance_read(user_id, room_id, target)
    watermark = max(marked, room.sent_seq(user_id))
    if moved:
        await delivery.to_room(room_id, events.deliver(events.read_frame(room_id, user_id, watermark)))
    return watermark, moved


async def typing(*, user_id: str, room_id: str) -> None:
    """Tell the room's other members that user_id is typing (not stored), at
    most every 2 s per user and room in this process: clients send one per
    keystroke, and the rest are dropped quietly. Precondition: the caller
    checked membership."""
    if not typing_throttle.ready((user_id, room_id)):
        return
    await delivery.to_room(room_id, events.deliver(events.typing_frame(room_id, user_id), skip_user=user_id))
