"""The chat's entities as plain values, and the clock they are stamped with.

Storage maps items to and from these types, services pass them around, and
the wire (chat.events, the consumer, the HTTP API) reads them; none of those
layers needs another's module for them. So this module imports no storage,
no ORM and no channel layer: anything may import it."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime


def iso_from_ms(timestamp_ms: int) -> str:
    """ISO-8601 as JavaScript's toISOString() gives it (clients compare it),
    e.g. 2026-01-02T03:04:05.678Z."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """Wall-clock milliseconds, the unit message timestamps are stored in."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Identity:
    """Who a request comes from, as their verified token says."""

    user_id: str
    nickname: str
    groups: tuple[str, ...] = ()
    # The token's exp (Unix seconds); infinite for callers without a token.
    expires_at: float = float("inf")


@dataclass(frozen=True)
class Room:
    room_id: str
    participant_ids: tuple[str, ...]
    type: str
    created_at: str
    name: str | None = None
    activity_id: str | None = None
    last_seq: int = 0
    last_ts: int = 0
    sent_seqs: dict[str, int] = field(default_factory=dict, compare=False)
    last_message: str | None = None
    last_message_at: str | None = None

    def sent_seq(self, user_id: str) -> int:
        """The seq of user_id's last message here (0 if none)."""
        return self.sent_seqs.get(user_id, 0)


@dataclass(frozen=True)
class Participation:
    room_id: str
    user_id: str
    joined_at: str
    read_seq: int = 0


@dataclass(frozen=True)
class RoomSummary:
    room: Room
    last_message: str | None
    last_message_at: str | None


@dataclass(frozen=True)
class Message:
    message_id: str
    room_id: str
    sender_id: str
    content: str
    message_type: str
    timestamp: int
    seq: int | None
    read_by: tuple[str, ...] = field(default=())
    client_message_id: str | None = None
    # When staff removed it (ISO 8601): a tombstone, its content emptied,
    # its key and seq kept (chat.services.moderation).
    deleted_at: str | None = None

    @property
    def created_at(self) -> str:
        return iso_from_ms(self.timestamp)


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: str
    connected_at: str
    ttl: int
    # The server process holding the socket (chat.services.liveness); None
    # on items written before processes were tracked.
    owner: str | None = None


@dataclass(frozen=True)
class UserProfile:
    """What the request path needs of a user's Django profile."""

    user_id: str
    nickname: str
    verification_status: str
    suspended: bool = False  # staff suspended the user: no socket, no HTTP call
