"""The wire format: every frame the server sends to clients, and every event
that travels over the channel layer, is built here and nowhere else."""
import json
from typing import Any

from chat.errors import ChatError, VerificationRequired
from chat.storage import Message

Frame = dict[str, Any]


def encode(frame: Frame) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


# --- frames to clients ------------------------------------------------------------


def message_frame(message: Message) -> Frame:
    return {
        "type": "message",
        "data": {
            "messageId": message.message_id,
            "chatRoomId": message.room_id,
            "senderId": message.sender_id,
            "content": message.content,
            "messageType": message.message_type,
            "createdAt": message.created_at,
            "timestamp": message.timestamp,
            "seq": message.seq,
        },
    }


def ack_frame(message: Message) -> Frame:
    return {
        "type": "ack",
        "data": {
            "messageId": message.message_id,
            "clientMessageId": message.client_message_id,
            "chatRoomId": message.room_id,
            "seq": message.seq,
            "timestamp": message.timestamp,
        },
    }


def error_frame(error: ChatError, action: str | None) -> Frame:
    if isinstance(error, VerificationRequired):
        # The reference system's frame, kept as it was for existing clients.
        return {"type": "VERIFICATION_REQUIRED", "message": error.message}
    return {"type": "error", "data": {"code": error.code, "message": error.message, "action": action}}


def pong_frame() -> Frame:
    return {"type": "pong"}


def verification_frame(status: str) -> Frame:
    return {"type": "verification", "data": {"status": status}}


def room_frame(room_id: str) -> Frame:
    return {"type": "room", "data": {"chatRoomId": room_id}}


# --- channel-layer events (handled by ChatConsumer methods of the same name) -------


def deliver(frame: Frame, *, skip_channel: str | None = None) -> dict[str, Any]:
    """A frame for every consumer in a group, encoded once for all of them.
    skip_channel is a consumer that already sent the frame itself."""
    return {"type": "chat.frame", "text": encode(frame), "skip": skip_channel}


def verification_changed(status: str) -> dict[str, Any]:
    return {"type": "chat.verification", "status": status}


def room_joined(room_id: str) -> dict[str, Any]:
    return {"type": "chat.room_joined", "room_id": room_id}


def connection_reaped(connection_id: str) -> dict[str, Any]:
    return {"type": "chat.reaped", "connection_id": connection_id}
