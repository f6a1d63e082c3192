"""Actions on chat state: each applies the domain's rules to input that
chat.validation has parsed, changes storage, then emits events (a decision
kept in Django's database, once it is committed). Used alike by the
consumer, the HTTP API, management commands and the admin; async, with sync
twins for sync callers (each on a storage session of its own,
chat.storage.run_sync), except staff's decisions (set_verification,
set_suspension, remove_message), which are sync (the ORM)."""

from typing import Any

from chat import storage
from chat.domain import Message, Room
from chat.services.connections import (
    OpenedConnection,
    admit_connection,
    close_connection,
    forget_connection,
    open_connection,
    refresh_connection,
)
from chat.services.messages import (
    ADMIN_GROUP,
    HistoryPage,
    SendResult,
    history,
    mark_read,
    readable_room,
    send_message,
    send_system_message,
    typing,
)
from chat.services.moderation import remove_message, set_suspension
from chat.services.overview import RoomMessages, UserOverview, room_messages_sync, user_overview_sync
from chat.services.profiles import current_status, ensure_not_suspended, status_on_connect
from chat.services.reaping import reap_dead_servers, reap_expired_connections
from chat.services.rooms import MAX_PARTICIPANTS, RoomListing, create_room, join_activity, leave_room, list_rooms
from chat.services.verification import set_verification


def create_room_sync(**kwargs: Any) -> Room:
    """create_room for sync callers (commands, the admin)."""
    return storage.run_sync(create_room, **kwargs)


def send_system_message_sync(**kwargs: Any) -> Message:
    """send_system_message for sync callers."""
    return storage.run_sync(send_system_message, **kwargs)


def reap_expired_connections_sync() -> int:
    """reap_expired_connections for sync callers (the reap_connections command)."""
    return storage.run_sync(reap_expired_connections)


__all__ = [
    "ADMIN_GROUP",
    "MAX_PARTICIPANTS",
    "HistoryPage",
    "OpenedConnection",
    "RoomListing",
    "RoomMessages",
    "SendResult",
    "UserOverview",
    "admit_connection",
    "close_connection",
    "create_room",
    "create_room_sync",
    "current_status",
    "ensure_not_suspended",
    "forget_connection",
    "history",
    "join_activity",
    "leave_room",
    "list_rooms",
    "mark_read",
    "open_connection",
    "readable_room",
    "reap_dead_servers",
    "reap_expired_connections",
    "reap_expired_connections_sync",
    "refresh_connection",
    "remove_message",
    "room_messages_sync",
    "send_message",
    "send_system_message",
    "send_system_message_sync",
    "set_suspension",
    "set_verification",
    "status_on_connect",
    "typing",
    "user_overview_sync",
]
