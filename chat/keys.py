"""The single-table key layout, and the only place that spells it.

Reference layout (unchanged):

| PK                    | SK                           | entity            |
|-----------------------|------------------------------|-------------------|
| CONNECTION#{connId}   | METADATA                     | Connection        |
| USER#{userId}         | CONNECTION#{connId}          | UserConnection    |
| CHATROOM#{roomId}     | METADATA                     | ChatRoom          |
| CHATROOM#{roomId}     | MESSAGE#{timestampMs}#{id}   | Message           |
| CHATROOM#{roomId}     | LASTMESSAGE                  | last-message preview |
| USER#{userId}         | CHATROOM#{roomId}            | ChatParticipation |
| USER#{userId}         | PROFILE                      | profile (`verificationStatus`) |
| ACTIVITY#{activityId} | CHATROOM#{roomId}            | activity link     |

Added by this project:

| PK                    | SK                           | entity            |
|-----------------------|------------------------------|-------------------|
| USER#{userId}         | PRESENCE                     | live connections, for presence |
| USER#{userId}         | CLIENTMSG#{roomId}#{clientMessageId} | idempotent-send record |
| ACTIVITY#{activityId} | METADATA                     | which room an activity has (created once) |
| SERVERS               | SERVER#{owner}               | a server process's heartbeat (chat.services.liveness) |
| READYZ                | READYZ                       | never written: `/readyz` reads it |

Every Connection and UserConnection item records the `owner` (server
process) that holds its socket; the Connection item is also in GSI1 under
GSI1PK = SERVERCONNECTIONS#{owner}, GSI1SK = its connection id, so the
connections of a process that died are one Query away. All heartbeats share
one small partition, so finding dead processes is one Query too.

Indexes (GSI1, LSI1) are described in chat.storage.schema.

A room's METADATA also holds, besides the reference's attributes, its last
seq and the last message's preview (`lastMessage`, `lastMessageAt`,
`lastMessageId`), which the room list reads. LASTMESSAGE holds the preview
too, as in the reference, plus the `lastSeq` it belongs to: written after
the ack, coalesced per room, and never moved back to an older message.
The PROFILE item mirrors the Django profile that staff decide on
(`verificationStatus`, `nickname`), so a connect reads it without the ORM.
Per participant who has sent, METADATA holds `sentSeq#{userId}`: the
seq of their last message. A send moves the counter, the preview and the
sender's sentSeq in the one write that takes its seq. A user's read
watermark is the greater of their sentSeq and the `readSeq` of their
participation item, which markRead moves (so reads never write the room's
busy METADATA item).
"""

Key = dict[str, str]

CONNECTION_PREFIX = "CONNECTION#"
ROOM_PREFIX = "CHATROOM#"
MESSAGE_PREFIX = "MESSAGE#"
# Sorts after every message sort key (digits, '#', uuid) and before METADATA.
MESSAGE_RANGE_END = "MESSAGE#~"
METADATA = "METADATA"
LAST_MESSAGE = "LASTMESSAGE"
SENT_SEQ_PREFIX = "sentSeq#"
SERVERS_PK = "SERVERS"
SERVER_PREFIX = "SERVER#"
READINESS_PROBE = "READYZ"


def _key(pk: str, sk: str) -> Key:
    return {"PK": pk, "SK": sk}


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def room_pk(room_id: str) -> str:
    return f"{ROOM_PREFIX}{room_id}"


def activity_pk(activity_id: str) -> str:
    return f"ACTIVITY#{activity_id}"


def connection(connection_id: str) -> Key:
    return _key(f"{CONNECTION_PREFIX}{connection_id}", METADATA)


def user_connection(user_id: str, connection_id: str) -> Key:
    return _key(user_pk(user_id), f"{CONNECTION_PREFIX}{connection_id}")


def presence(user_id: str) -> Key:
    return _key(user_pk(user_id), "PRESENCE")


def profile(user_id: str) -> Key:
    return _key(user_pk(user_id), "PROFILE")


def room(room_id: str) -> Key:
    return _key(room_pk(room_id), METADATA)


def last_message(room_id: str) -> Key:
    return _key(room_pk(room_id), LAST_MESSAGE)


def message(room_id: str, timestamp_ms: int, message_id: str) -> Key:
    return _key(room_pk(room_id), f"{MESSAGE_PREFIX}{timestamp_ms}#{message_id}")


def client_message(user_id: str, room_id: str, client_message_id: str) -> Key:
    return _key(user_pk(user_id), f"CLIENTMSG#{room_id}#{client_message_id}")


def participation(user_id: str, room_id: str) -> Key:
    return _key(user_pk(user_id), room_pk(room_id))


def user_rooms_gsi_pk(user_id: str) -> str:
    return f"USERROOMS#{user_id}"


def server_heartbeat(owner: str) -> Key:
    return _key(SERVERS_PK, f"{SERVER_PREFIX}{owner}")


def server_connections_gsi_pk(owner: str) -> str:
    return f"SERVERCONNECTIONS#{owner}"


def activity_room(activity_id: str, room_id: str) -> Key:
    return _key(activity_pk(activity_id), room_pk(room_id))


def activity(activity_id: str) -> Key:
    return _key(activity_pk(activity_id), METADATA)


def readiness_probe() -> Key:
    """A key that is never written: /readyz reads it to see DynamoDB answer."""
    return _key(READINESS_PROBE, READINESS_PROBE)


def sent_seq_attribute(user_id: str) -> str:
    """The METADATA attribute holding the seq of user_id's last message."""
    return f"{SENT_SEQ_PREFIX}{user_id}"


def room_id_from_sk(sort_key: str) -> str:
    """The room id of a participation or activity item's sort key."""
    return sort_key.removeprefix(ROOM_PREFIX)
