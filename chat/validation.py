"""Parsing and validation of client requests into typed values."""
import re
from dataclasses import dataclass
from typing import Any

from chat.errors import InvalidRequest, MessageTooLong

MAX_CONTENT_UTF16 = 5000
MAX_CLIENT_MESSAGE_ID = 64
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class SendMessage:
    room_id: str
    content: str
    client_message_id: str | None


def room_id(value: Any, field: str = "chatRoomId") -> str:
    if not isinstance(value, str) or not ROOM_ID.fullmatch(value):
        raise InvalidRequest(f"{field} must be 1-128 characters of A-Z, a-z, 0-9, _ and -")
    return value


def utf16_length(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def content(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("content must be a string")
    if not value.strip():
        raise InvalidRequest("content must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest("content contains an unpaired surrogate") from exc
    if utf16_length(value) > MAX_CONTENT_UTF16:
        raise MessageTooLong(f"content is longer than {MAX_CONTENT_UTF16} UTF-16 code units")
    return value


def client_message_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_MESSAGE_ID:
        raise InvalidRequest(f"clientMessageId must be a string of 1-{MAX_CLIENT_MESSAGE_ID} characters")
    return value


def send_message(frame: dict[str, Any]) -> SendMessage:
    """Validate a sendMessage frame; raises InvalidRequest or MessageTooLong."""
    if "chatRoomId" not in frame or "content" not in frame:
        raise InvalidRequest("chatRoomId and content are required")
    return SendMessage(
        room_id=room_id(frame["chatRoomId"]),
        content=content(frame["content"]),
        client_message_id=client_message_id(frame.get("clientMessageId")),
    )


def user_id(value: Any) -> str:
    """A user id (token subject): 1-256 printable characters without '#'."""
    if not isinstance(value, str) or not 1 <= len(value) <= 256 or "#" in value or not value.isprintable():
        raise InvalidRequest("user ids must be 1-256 printable characters without '#'")
    return value


@dataclass(frozen=True)
class GetMessages:
    room_id: str
    after_seq: int | None
    before_seq: int | None
    limit: int


MAX_PAGE = 100


def seq(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"{field} must be a non-negative integer")
    return value


def optional_seq(value: Any, field: str) -> int | None:
    return None if value is None else seq(value, field)


def limit(value: Any, default: int = 50) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_PAGE}")
    return value


def get_messages(fields: dict[str, Any]) -> GetMessages:
    """Validate a history request (socket frame or query parameters already
    converted to ints); afterSeq and beforeSeq exclude each other."""
    request = GetMessages(
        room_id=room_id(fields.get("chatRoomId")),
        after_seq=optional_seq(fields.get("afterSeq"), "afterSeq"),
        before_seq=optional_seq(fields.get("beforeSeq"), "beforeSeq"),
        limit=limit(fields.get("limit")),
    )
    if request.after_seq is not None and request.before_seq is not None:
        raise InvalidRequest("give afterSeq or beforeSeq, not both")
    return request
