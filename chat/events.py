"""The wire format: every frame the server sends to clients, every JSON body
of the HTTP API, and every event that travels over the channel layer, is
built here and nowhere else."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict, final

from chat import delivery
from chat.domain import Message, Room, iso_from_ms
from chat.errors import ChatError, RateLimited, VerificationRequired

DEFAULT_ROOM_NAMES = {"direct": "Direct message", "group": "Group chat"}


# --- types of frames, bodies and events -------------------------------------------
# Named once, so that builders, the hub and the consumer agree on them; the
# frames' JSON Schema (docs/frames.schema.json) is their public twin. Frames
# and events are final: they carry these keys and no others, which lets a
# reader tell events apart by their keys (the hub by "leaves").


class MessageData(TypedDict):
    messageId: str
    chatRoomId: str
    senderId: str
    content: str
    messageType: str
    createdAt: str
    timestamp: int
    seq: int | None
    readBy: NotRequired[list[str]]
    removed: NotRequired[Literal[True]]  # staff removed it: content is empty
    deletedAt: NotRequired[str]


class RoomData(TypedDict):
    chatRoomId: str
    name: str
    type: str
    participantIds: list[str]
    activityId: str | None
    createdAt: str


class ErrorFields(TypedDict):
    code: str
    message: str
    retryAfterMs: NotRequired[int]


class ErrorBody(TypedDict):
    error: ErrorFields


class ErrorData(ErrorFields):
    action: str | None


class AckData(TypedDict):
    messageId: str
    clientMessageId: str | None
    chatRoomId: str
    seq: int
    timestamp: int
    duplicate: NotRequired[bool]


class MessagesData(TypedDict):
    chatRoomId: str
    messages: list[MessageData]
    hasMore: bool


class AuthenticatedData(TypedDict):
    userId: str
    validUntil: str


class VerificationData(TypedDict):
    status: str
    reason: NotRequired[str]  # staff's reason, when they gave one


class MessageRemovedData(TypedDict):
    chatRoomId: str
    messageId: str
    seq: int | None


class RoomLeftData(TypedDict):
    chatRoomId: str


class ReadData(TypedDict):
    chatRoomId: str
    userId: str
    seq: int


class TypingData(TypedDict):
    chatRoomId: str
    userId: str


class PresenceData(TypedDict):
    userId: str
    online: bool


@final
class MessageFrame(TypedDict):
    type: Literal["message"]
    data: MessageData


@final
class AckFrame(TypedDict):
    type: Literal["ack"]
    data: AckData


@final
class ErrorFrame(TypedDict):
    type: Literal["error"]
    data: ErrorData


@final
class VerificationRequiredFrame(TypedDict):
    type: Literal["VERIFICATION_REQUIRED"]
    message: str


@final
class MessagesFrame(TypedDict):
    type: Literal["messages"]
    data: MessagesData


@final
class PongFrame(TypedDict):
    type: Literal["pong"]


@final
class AuthenticatedFrame(TypedDict):
    type: Literal["authenticated"]
    data: AuthenticatedData


@final
class VerificationFrame(TypedDict):
    type: Literal["verification"]
    data: VerificationData


@final
class MessageRemovedFrame(TypedDict):
    type: Literal["messageRemoved"]
    data: MessageRemovedData


@final
class RoomFrame(TypedDict):
    type: Literal["room"]
    data: RoomData


@final
class RoomLeftFrame(TypedDict):
    type: Literal["roomLeft"]
    data: RoomLeftData


@final
class ReadFrame(TypedDict):
    type: Literal["read"]
    data: ReadData


@final
class TypingFrame(TypedDict):
    type: Literal["typing"]
    data: TypingData


@final
class PresenceFrame(TypedDict):
    type: Literal["presence"]
    data: PresenceData


ServerFrame = (
    MessageFrame
    | AckFrame
    | ErrorFrame
    | VerificationRequiredFrame
    | MessagesFrame
    | PongFrame
    | AuthenticatedFrame
    | VerificationFrame
    | MessageRemovedFrame
    | RoomFrame
    | RoomLeftFrame
    | ReadFrame
    | TypingFrame
    | PresenceFrame
)


class _Routed(TypedDict, total=False):
    group: str  # the group the event was sent to, added by delivery on the way


class EncodedFrame(TypedDict):
    """A frame encoded once for all the sockets of a group: `skip` (a
    channel) already sent it itself, `skip_user`'s connections do not get it."""

    text: str
    skip_user: str | None
    skip: NotRequired[str | None]


@final
class FrameEvent(_Routed, EncodedFrame):
    type: Literal["chat.frame"]


@final
class FramesEvent(_Routed):
    type: Literal["chat.frames"]
    frames: list[EncodedFrame]


@final
class VerificationEvent(_Routed):
    type: Literal["chat.verification"]
    status: str
    reason: NotRequired[str]


@final
class SuspendedEvent(_Routed):
    type: Literal["chat.suspended"]


@final
class RoomJoinedEvent(_Routed):
    type: Literal["chat.room_joined"]
    room: RoomData


@final
class RoomLeftEvent(_Routed):
    type: Literal["chat.room_left"]
    room_id: str
    leaves: str


@final
class ReapedEvent(_Routed):
    type: Literal["chat.reaped"]
    connection_id: str


# The hub writes frame events to the sockets itself and posts the others to
# each member consumer, whose method of the same name handles them.
ConsumerEvent = VerificationEvent | RoomJoinedEvent | RoomLeftEvent | ReapedEvent | SuspendedEvent
ChannelEvent = FrameEvent | FramesEvent | ConsumerEvent


@dataclass(frozen=True)
class Ack:
    message_id: str
    client_message_id: str | None
    room_id: str
    seq: int
    timestamp: int
    duplicate: bool = False


def encode(frame: ServerFrame) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# --- shared shapes -------------------------------------------------------------------


def message_data(message: Message, *, read_by: Iterable[str] | None = None) -> MessageData:
    data: MessageData = {
        "messageId": message.message_id,
        "chatRoomId": message.room_id,
        "senderId": message.sender_id,
        "content": message.content,
        "messageType": message.message_type,
        "createdAt": message.created_at,
        "timestamp": message.timestamp,
        "seq": message.seq,
    }
    if read_by is not None:
        data["readBy"] = list(read_by)
    if message.deleted_at is not None:
        data["removed"], data["deletedAt"] = True, message.deleted_at
    return data


def room_data(room: Room) -> RoomData:
    return {
        "chatRoomId": room.room_id,
        "name": room.name or DEFAULT_ROOM_NAMES.get(room.type, "Chat"),
        "type": room.type,
        "participantIds": list(room.participant_ids),
        "activityId": room.activity_id,
        "createdAt": room.created_at,
    }


def _error_fields(error: ChatError) -> ErrorFields:
    fields: ErrorFields = {"code": error.code, "message": error.message}
    if isinstance(error, RateLimited):
        fields["retryAfterMs"] = error.retry_after_ms
    return fields


def error_body(error: ChatError) -> ErrorBody:
    return {"error": _error_fields(error)}


# --- frames to clients ------------------------------------------------------------


def message_frame(message: Message) -> MessageFrame:
    return {"type": "message", "data": message_data(message)}


def ack_frame(ack: Ack) -> AckFrame:
    data: AckData = {
        "messageId": ack.message_id,
        "clientMessageId": ack.client_message_id,
        "chatRoomId": ack.room_id,
        "seq": ack.seq,
        "timestamp": ack.timestamp,
    }
    if ack.duplicate:
        data["duplicate"] = True
    return {"type": "ack", "data": data}


def error_frame(error: ChatError, action: str | None) -> ErrorFrame | VerificationRequiredFrame:
    if isinstance(error, VerificationRequired):
        # The reference system's frame, kept as it was for existing clients.
        return {"type": "VERIFICATION_REQUIRED", "message": error.message}
    return {"type": "error", "data": {**_error_fields(error), "action": action}}


def messages_frame(room_id: str, messages: list[MessageData], *, has_more: bool) -> MessagesFrame:
    return {"type": "messages", "data": {"chatRoomId": room_id, "messages": messages, "hasMore": has_more}}


def pong_frame() -> PongFrame:
    return {"type": "pong"}


def authenticated_frame(user_id: str, valid_until: float) -> AuthenticatedFrame:
    """The session was extended: the socket stays open until valid_until
    (Unix seconds: the new token's exp plus the server's leeway)."""
    return {"type": "authenticated", "data": {"userId": user_id, "validUntil": iso_from_ms(int(valid_until * 1000))}}


def verification_frame(status: str, reason: str | None = None) -> VerificationFrame:
    data: VerificationData = {"status": status}
    if reason:
        data["reason"] = reason
    return {"type": "verification", "data": data}


def message_removed_frame(message: Message) -> MessageRemovedFrame:
    """Staff removed the message: clients hide it (history keeps it as a
    tombstone under its seq)."""
    return {
        "type": "messageRemoved",
        "data": {"chatRoomId": message.room_id, "messageId": message.message_id, "seq": message.seq},
    }


def room_frame(room: RoomData) -> RoomFrame:
    return {"type": "room", "data": room}


def room_left_frame(room_id: str) -> RoomLeftFrame:
    return {"type": "roomLeft", "data": {"chatRoomId": room_id}}


def read_frame(room_id: str, user_id: str, seq: int) -> ReadFrame:
    return {"type": "read", "data": {"chatRoomId": room_id, "userId": user_id, "seq": seq}}


def typing_frame(room_id: str, user_id: str) -> TypingFrame:
    return {"type": "typing", "data": {"chatRoomId": room_id, "userId": user_id}}


def presence_frame(user_id: str, online: bool) -> PresenceFrame:
    return {"type": "presence", "data": {"userId": user_id, "online": online}}


# --- channel-layer events (handled by ChatConsumer methods of the same name) -------


def deliver(frame: ServerFrame, *, skip_channel: str | None = None, skip_user: str | None = None) -> FrameEvent:
    """A frame for every consumer in a group, encoded once for all of them.
    skip_channel already sent it itself; skip_user's connections do not get it."""
    return {"type": "chat.frame", "text": encode(frame), "skip": skip_channel, "skip_user": skip_user}


def deliver_many(frames: Sequence[tuple[ServerFrame, str | None]]) -> FramesEvent:
    """Several frames for every consumer in a group, in one channel-layer
    event: each (frame, skip_user) is written to the group's sockets as
    deliver() would, in order."""
    return {"type": "chat.frames", "frames": [{"text": encode(frame), "skip_user": skip} for frame, skip in frames]}


def verification_changed(status: str, reason: str | None = None) -> VerificationEvent:
    event: VerificationEvent = {"type": "chat.verification", "status": status}
    if reason:
        event["reason"] = reason
    return event


def user_suspended() -> SuspendedEvent:
    """For the suspended user's connections, which close (4430)."""
    return {"type": "chat.suspended"}


def room_joined(room: Room) -> RoomJoinedEvent:
    return {"type": "chat.room_joined", "room": room_data(room)}


def room_left(room_id: str) -> RoomLeftEvent:
    """For the leaver's connections. `leaves` names the group whose frames
    stop here, in the stream's order, before the consumer handles the event."""
    return {"type": "chat.room_left", "room_id": room_id, "leaves": delivery.room_group(room_id)}


def connection_reaped(connection_id: str) -> ReapedEvent:
    return {"type": "chat.reaped", "connection_id": connection_id}
