"""All DynamoDB access. The data plane (chat.storage.dynamo) is async, on the
event loop; the control plane (chat.storage.control: the table, scans) is
blocking boto3. Functions take and return chat.domain's dataclasses (and
a few records of storage's own), never raw items, and raise StorageUnavailable for any failure of
the endpoint, so callers never see the client libraries. Keys come from
chat.keys, the table's schema from chat.storage.schema. Sync callers use
run_sync."""

from chat.storage.connections import (
    delete_connection,
    delete_expired_connection,
    delete_owned_connection,
    expired_connections,
    get_connection,
    online_users,
    put_connection,
    server_connections,
    set_offline,
    set_online,
    user_connection_ids,
    user_connections,
)
from chat.storage.control import create_table, delete_table, reset_client
from chat.storage.dynamo import deadline, run_sync, spawn
from chat.storage.health import probe
from chat.storage.messages import (
    Allocation,
    ClientMessage,
    allocate,
    commit_client_message,
    messages_page,
    put_message,
    release_client_message,
    reserve_client_message,
    take_over_client_message,
    withdraw_preview,
)
from chat.storage.moderation import REMOVED_PREVIEW, message_at, remove_message
from chat.storage.previews import note_last_message
from chat.storage.profiles import get_profile, put_profile, set_nickname, set_suspended, set_verification_status
from chat.storage.rooms import (
    activity_room_id,
    add_participant,
    advance_read,
    claim_activity,
    get_room,
    put_room,
    read_seqs,
    remove_participant,
    room_summaries,
    user_participations,
)
from chat.storage.servers import Heartbeat, beat, claim_dead_server, dead_servers, delete_heartbeat, start_heartbeat

__all__ = [
    "REMOVED_PREVIEW",
    "Allocation",
    "ClientMessage",
    "Heartbeat",
    "activity_room_id",
    "add_participant",
    "advance_read",
    "allocate",
    "beat",
    "claim_activity",
    "claim_dead_server",
    "commit_client_message",
    "create_table",
    "dead_servers",
    "deadline",
    "delete_connection",
    "delete_expired_connection",
    "delete_heartbeat",
    "delete_owned_connection",
    "delete_table",
    "expired_connections",
    "get_connection",
    "get_profile",
    "get_room",
    "message_at",
    "messages_page",
    "note_last_message",
    "online_users",
    "probe",
    "put_connection",
    "put_message",
    "put_profile",
    "put_room",
    "read_seqs",
    "release_client_message",
    "remove_message",
    "remove_participant",
    "reserve_client_message",
    "reset_client",
    "room_summaries",
    "run_sync",
    "server_connections",
    "set_nickname",
    "set_offline",
    "set_online",
    "set_suspended",
    "set_verification_status",
    "spawn",
    "start_heartbeat",
    "take_over_client_message",
    "user_connection_ids",
    "user_connections",
    "user_participations",
    "withdraw_preview",
]
