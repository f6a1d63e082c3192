"""Parsing and validation of client requests into typed values."""

import json
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chat.errors import InvalidJson, InvalidRequest, MessageTooLong, UnknownAction

MAX_CONTENT_UTF16 = 5000
MAX_CLIENT_MESSAGE_ID = 64
MAX_ECHOED_ACTION = 64
MAX_NICKNAME = 40
MAX_ROOM_NAME = 100
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The largest integer JavaScript holds exactly; DynamoDB's numbers hold it too
# (a 40-digit one makes its Decimal context raise Rounded).
MAX_SAFE_INTEGER = 2**53 - 1
QUERY_INT = re.compile(r"[0-9]{1,16}")
# Control, format (zero-width, BOM) and separator characters: no glyph, so
# content made only of them shows as an empty bubble.
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp"}
DEFAULT_PORTS = {"http": 80, "https": 443}
# A socket's own scheme, as an Origin spells it.
ORIGIN_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")


@dataclass(frozen=True)
class SendMessage:
    room_id: str
    content: str
    client_message_id: str | None


def client_frame(text_data: str | None) -> dict[str, Any]:
    """A socket frame as the JSON object it must be (text_data is None for
    a binary frame)."""
    if text_data is None:
        raise InvalidJson("Binary frames are not accepted; send JSON text")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson("Frame is not valid JSON") from exc
    if not isinstance(frame, dict):
        raise InvalidJson("Frame must be a JSON object")
    return frame


def room_id(value: Any, field: str = "chatRoomId") -> str:
    if not isinstance(value, str) or not ROOM_ID.fullmatch(value):
        raise InvalidRequest(f"{field} must be 1-128 characters of A-Z, a-z, 0-9, _ and -")
    return value


def utf16_length(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def visible(text: str) -> bool:
    """Whether text has a character that is not white space, a control or a
    format character. Unassigned code points count as visible: they may be
    characters newer than this Python's Unicode tables."""
    return any(not ch.isspace() and unicodedata.category(ch) not in INVISIBLE_CATEGORIES for ch in text)


def content(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("content must be a string")
    if not visible(value):
        raise InvalidRequest("content must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest("content contains an unpaired surrogate") from exc
    if utf16_length(value) > MAX_CONTENT_UTF16:
        raise MessageTooLong(f"content is longer than {MAX_CONTENT_UTF16} UTF-16 code units")
    return value


def echoed_action(value: Any) -> str | None:
    """A frame's action as its error frame may echo it: a string of at most
    MAX_ECHOED_ACTION characters that UTF-8 can carry, else None. The wire
    is UTF-8, so echoing a lone surrogate would fail the send itself."""
    if not isinstance(value, str) or len(value) > MAX_ECHOED_ACTION:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def action(value: Any, known: Collection[str]) -> str:
    """A frame's action, which must be one of known."""
    if not isinstance(value, str):
        raise InvalidRequest("action must be a string")
    if value not in known:
        shown = echoed_action(value)
        raise UnknownAction(f"Unknown action: {shown}" if shown else None)
    return value


def token(value: Any) -> str:
    """An authenticate frame's token (checked by chat.auth, not here)."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest("token must be a non-empty string")
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


def nickname(value: Any) -> str:
    """A display name as it may reach other people (system messages say
    "<nickname> joined"): control, format and unassigned characters (bidi
    overrides, zero-width spaces, NUL) dropped, each run of whitespace made
    one space, at most MAX_NICKNAME characters. Empty if nothing is left."""
    text = "".join(" " if unicodedata.category(char).startswith("C") else char for char in str(value))
    return " ".join(text.split())[:MAX_NICKNAME].rstrip()


@dataclass(frozen=True)
class CreateRoom:
    """The participants as given (duplicates and all: how many a room may
    have, with its creator, is the service's rule)."""

    participant_ids: list[str]
    name: str | None
    activity_id: str | None


def activity_id(value: Any) -> str:
    return room_id(value, field="activityId")


def create_room(fields: dict[str, Any]) -> CreateRoom:
    """Validate a room creation (an HTTP body, or a command's arguments in
    its shape); raises InvalidRequest."""
    if "participantIds" not in fields:
        raise InvalidRequest("participantIds is required")
    participants = fields["participantIds"]
    if not isinstance(participants, list):
        raise InvalidRequest("participantIds must be a list of user ids")
    participant_ids = [user_id(value) for value in participants]
    name, activity = fields.get("name"), fields.get("activityId")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_ROOM_NAME):
        raise InvalidRequest(f"name must be a string of at most {MAX_ROOM_NAME} characters")
    return CreateRoom(participant_ids, name, None if activity is None else activity_id(activity))


@dataclass(frozen=True)
class GetMessages:
    room_id: str
    after_seq: int | None
    before_seq: int | None
    limit: int


MAX_PAGE = 100


def seq(value: Any, field: str) -> int:
    """A non-negative integer that JavaScript and DynamoDB both hold exactly."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAFE_INTEGER:
        raise InvalidRequest(f"{field} must be an integer from 0 to {MAX_SAFE_INTEGER}")
    return value


def query_int(raw: str | None, field: str) -> int | None:
    """A query parameter as a bounded integer (None when absent or empty).
    Only ASCII digits: int() would also take signs, underscores, spaces
    and other scripts' digits."""
    if raw is None or raw == "":
        return None
    if not QUERY_INT.fullmatch(raw) or int(raw) > MAX_SAFE_INTEGER:
        raise InvalidRequest(f"{field} must be an integer from 0 to {MAX_SAFE_INTEGER}")
    return int(raw)


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


@dataclass(frozen=True)
class Origin:
    """A web origin as browsers compare them: scheme, host and port."""

    scheme: str
    host: str
    port: int


def origin(value: str, *, scheme: str | None = None) -> Origin | None:
    """Parse an Origin header or an ALLOWED_ORIGINS entry, or, given the
    request's scheme, a Host header. ws/wss count as http/https, hosts are
    lower-cased, default ports filled in. None for anything but exactly
    scheme://host[:port]: `null`, a path, or user info, as in
    `http://example.com:8000@evil` (whose host is `evil`)."""
    text = value if scheme is None else f"{scheme}://{value}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    normal = ORIGIN_SCHEMES.get(parts.scheme.lower())
    host = parts.hostname
    if normal is None or not host or not HOST.fullmatch(host) or "@" in parts.netloc:
        return None
    if parts.path or "?" in text or "#" in text:
        return None
    return Origin(normal, host, DEFAULT_PORTS[normal] if port is None else port)
