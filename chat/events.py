"""The wire format: every frame the server sends to clients, every JSON body
of the HTTP API, and every event that travels over the channel layer, is
built here and nowhere else."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chat import delivery
from chat.errors import ChatError, RateLimited, VerificationRequired
from chat.storage import Message, Room, iso_from_ms

Frame = dict[str, Any]
DEFAULT_ROOM_NAMES = {"direct": "Direct message", "group": "Group chat"}


@dataclass(frozen=True)
class Ack:
    message_id: str
    client_message_id: str | None
    room_id: str
    seq: int
    timestamp: int
    duplicate: bool = False


def encode(frame: Frame) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# --- shared shapes -------------------------------------------------------------------


def message_data(message: Message, *, read_by: Iterable[str] | None = None) -> dict[str, Any]:
    data = {
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
    return data


def room_data(room: Room) -> dict[str, Any]:
    return {
        "chatRoomId": room.room_id,
        "name": room.name or DEFAULT_ROOM_NAMES.get(room.type, "Chat"),
        "type": room.type,
        "participantIds": list(room.participant_ids),
        "activityId": room.activity_id,
        "createdAt": room.created_at,
    }


def _error_fields(error: ChatError) -> dict[str, Any]:
    fields: dict[str, Any] = {"code": error.code, "message": error.message}
    if isinstance(error, RateLimited):
        fields["retryAfterMs"] = error.retry_after_ms
    return fields


def error_body(error: ChatError) -> dict[str, Any]:
    return {"error": _error_fields(error)}


# --- frames to clients ------------------------------------------------------------


def message_frame(message: Message) -> Frame:
    return {"type": "message", "data": message_data(message)}


def ack_frame(ack: Ack) -> Frame:
    data = {
        "messageId": ack.message_id,
        "clientMessageId": ack.client_message_id,
        "chatRoomId": ack.room_id,
        "seq": ack.seq,
        "timestamp": ack.timestamp,
    }
    if ack.duplicate:
        data["duplicate"] = True
    return {"type": "ack", "data": data}


def error_frame(error: ChatError, action: str | None) -> Frame:
    if isinstance(error, VerificationRequired):
        # The reference system's frame, kept as it was for existing clients.
        return {"type": "VERIFICATION_REQUIRED", "message": error.message}
    return {"type": "error", "data": {**_error_fields(error), "action": action}}


def messages_frame(room_id: str, messages: list[dict[str, Any]], *, has_more: bool) -> Frame:
    return {"type": "messages", "data": {"chatRoomId": room_id, "messages": messages, "hasMore": has_more}}


def pong_frame() -> Frame:
    return {"type": "pong"}


def authenticated_frame(user_id: str, valid_until: float) -> Frame:
    """The session was extended: the socket stays open until valid_until
    (Unix seconds: the new token's exp plus the server's leeway)."""
    return {"type": "authenticated", "data": {"userId": user_id, "validUntil": iso_from_ms(int(valid_until * 1000))}}


def verification_frame(status: str) -> Frame:
    return {"type": "verification", "data": {"status": status}}


def room_frame(room: dict[str, Any]) -> Frame:
    return {"type": "room", "data": room}


def room_left_frame(room_id: str) -> Frame:
    return {"type": "roomLeft", "data": {"chatRoomId": room_id}}


def read_frame(room_id: str, user_id: str, seq: int) -> Frame:
    return {"type": "read", "data": {"chatRoomId": room_id, "userId": user_id, "seq": seq}}


def typing_frame(room_id: str, user_id: str) -> Frame:
    return {"type": "typing", "data": {"chatRoomId": room_id, "userId": user_id}}


def presence_frame(user_id: str, online: bool) -> Frame:
    return {"type": "presence", "data": {"userId": user_id, "online": online}}


# --- channel-layer events (handled by ChatConsumer methods of the same name) -------


def deliver(frame: Frame, *, skip_channel: str | None = None, skip_user: str | None = None) -> dict[str, Any]:
    """A frame for every consumer in a group, encoded once for all of them.
    skip_channel already sent it itself; skip_user's connections do not get it."""
    return {"type": "chat.frame", "text": encode(frame), "skip": skip_channel, "skip_user": skip_user}


def deliver_many(frames: Sequence[tuple[Frame, str | None]]) -> dict[str, Any]:
    """Several frames for every consumer in a group, in one channel-layer
    event: each (frame, skip_user) is written to the group's sockets as
    deliver() would, in order."""
    return {"type": "chat.frames", "frames": [{"text": encode(frame), "skip_user": skip} for frame, skip in frames]}


def verification_changed(status: str) -> dict[str, Any]:
    return {"type": "chat.verification", "status": status}


def room_joined(room: Room) -> dict[str, Any]:
    return {"type": "chat.room_joined", "room": room_data(room)}


def room_left(room_id: str) -> dict[str, Any]:
    """For the leaver's connections. `leaves` names the group whose frames
    stop here, in the stream's order, before the consumer handles the event."""
    return {"type": "chat.room_left", "room_id": room_id, "leaves": delivery.room_group(room_id)}


def connection_reaped(connection_id: str) -> dict[str, Any]:
    return {"type": "chat.reaped", "connection_id": connection_id}
