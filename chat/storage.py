"""All DynamoDB access. Functions here are blocking (boto3): async callers go
through chat.blocking.run_blocking. They take and return the dataclasses
below, never raw items, and raise StorageUnavailable for any failure of the
endpoint, so callers never see botocore.
"""
import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from chat import keys
from chat.errors import NotAParticipant, RoomNotFound, StorageUnavailable

log = logging.getLogger(__name__)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
CONDITION_FAILED = "ConditionalCheckFailedException"
BATCH_WRITE_SIZE = 25


def iso_from_ms(timestamp_ms: int) -> str:
    """The ISO-8601 form JavaScript's toISOString() gives, e.g. 2026-01-02T03:04:05.678Z."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: str
    connected_at: str
    ttl: int


@dataclass(frozen=True)
class Room:
    room_id: str
    participant_ids: tuple[str, ...]
    type: str
    created_at: str
    name: str | None = None
    activity_id: str | None = None


@dataclass(frozen=True)
class Message:
    message_id: str
    room_id: str
    sender_id: str
    content: str
    message_type: str
    timestamp: int
    seq: int
    read_by: tuple[str, ...] = field(default=())
    client_message_id: str | None = None

    @property
    def created_at(self) -> str:
        return iso_from_ms(self.timestamp)


# --- plumbing -----------------------------------------------------------------


@functools.cache
def client() -> Any:
    config = Config(
        max_pool_connections=settings.BLOCKING_THREADS,
        connect_timeout=3,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.client(
        "dynamodb",
        region_name=settings.AWS_REGION,
        endpoint_url=settings.DYNAMODB_ENDPOINT_URL,
        config=config,
    )


def _table() -> str:
    return settings.DYNAMODB_TABLE


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{name}": _serializer.serialize(value) for name, value in values.items()}


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


@contextlib.contextmanager
def _guard(operation: str, expected: frozenset[str] = frozenset({CONDITION_FAILED})) -> Iterator[None]:
    """Turn endpoint failures into StorageUnavailable; the expected error
    codes (by default a failed condition) pass through for the caller."""
    try:
        yield
    except ClientError as exc:
        if _error_code(exc) in expected:
            raise
        log.error("DynamoDB %s failed: %s", operation, exc)
        raise StorageUnavailable() from exc
    except BotoCoreError as exc:
        log.error("DynamoDB %s failed: %s", operation, exc)
        raise StorageUnavailable() from exc


def _is_condition_failure(exc: ClientError) -> bool:
    return _error_code(exc) == CONDITION_FAILED


def _put(values: dict[str, Any], condition: str | None = None) -> None:
    request: dict[str, Any] = {"TableName": _table(), "Item": _to_item(values)}
    if condition:
        request["ConditionExpression"] = condition
    with _guard("PutItem"):
        client().put_item(**request)


def _delete(key: keys.Key, **conditional: Any) -> None:
    with _guard("DeleteItem"):
        client().delete_item(TableName=_table(), Key=_to_item(key), **conditional)


def _query(**request: Any) -> Iterator[dict[str, Any]]:
    paginator = client().get_paginator("query")
    with _guard("Query"):
        for page in paginator.paginate(TableName=_table(), **request):
            for item in page.get("Items", []):
                yield _from_item(item)


# --- table ----------------------------------------------------------------------


def create_table() -> bool:
    """Create the table with GSI1 and TTL on `ttl`. Returns False if it existed.
    An endpoint without UpdateTimeToLive is tolerated: every read of expiring
    items filters on `ttl` itself, and reap_connections deletes them."""
    spec = {
        "TableName": _table(),
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }
    try:
        with _guard("CreateTable", expected=frozenset({"ResourceInUseException"})):
            client().create_table(**spec)
    except ClientError:
        return False
    with _guard("DescribeTable"):
        client().get_waiter("table_exists").wait(TableName=_table(), WaiterConfig={"Delay": 1})
    _enable_ttl()
    return True


def _enable_ttl() -> None:
    try:
        client().update_time_to_live(
            TableName=_table(), TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
    except ClientError as exc:
        log.warning("TTL not supported here (%s); expired items are filtered on read and reaped", _error_code(exc))


# --- connections ------------------------------------------------------------------


def put_connection(conn: Connection) -> None:
    """Write Connection, then UserConnection. Deletes run in the opposite
    order, so a UserConnection never exists without its Connection and the
    reaper, which scans Connection items, finds every pair."""
    common = {"connectionId": conn.connection_id, "connectedAt": conn.connected_at, "ttl": conn.ttl}
    _put({**keys.connection(conn.connection_id), "Type": "Connection", "userId": conn.user_id, **common})
    _put({**keys.user_connection(conn.user_id, conn.connection_id), "Type": "UserConnection", **common})


def refresh_connection(conn: Connection) -> None:
    """Rewrite both items with conn's (later) ttl."""
    put_connection(conn)


def delete_connection(user_id: str, connection_id: str) -> None:
    """Delete both items; missing items are fine."""
    _delete(keys.user_connection(user_id, connection_id))
    _delete(keys.connection(connection_id))


def _connection_from(values: dict[str, Any]) -> Connection:
    return Connection(
        connection_id=values["connectionId"],
        user_id=values["userId"],
        connected_at=values["connectedAt"],
        ttl=int(values["ttl"]),
    )


def get_connection(connection_id: str, *, now: int) -> Connection | None:
    """The live connection, or None if it is unknown or expired."""
    with _guard("GetItem"):
        item = client().get_item(TableName=_table(), Key=_to_item(keys.connection(connection_id)), ConsistentRead=True)
    values = _from_item(item.get("Item", {}))
    if not values or int(values.get("ttl", 0)) <= now:
        return None
    return _connection_from(values)


def user_connection_ids(user_id: str, *, now: int) -> list[str]:
    """Ids of the user's unexpired connections."""
    items = _query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        FilterExpression="#ttl > :now",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues=_values(pk=keys.user_pk(user_id), prefix=keys.CONNECTION_PREFIX, now=now),
        ConsistentRead=True,
    )
    return [item["connectionId"] for item in items]


def expired_connections(*, now: int) -> Iterator[Connection]:
    """Connection items whose ttl has passed. A Scan: this is for the
    periodic reaper only, never for a request path."""
    paginator = client().get_paginator("scan")
    with _guard("Scan"):
        pages = paginator.paginate(
            TableName=_table(),
            FilterExpression="begins_with(PK, :prefix) AND SK = :meta AND #ttl <= :now",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=_values(prefix=keys.CONNECTION_PREFIX, meta=keys.METADATA, now=now),
        )
        for page in pages:
            for item in page.get("Items", []):
                yield _connection_from(_from_item(item))


def delete_expired_connection(conn: Connection, *, now: int) -> bool:
    """Delete both items of conn if they are still expired (a live consumer
    may have refreshed them since the scan). Returns whether it did."""
    condition = {
        "ConditionExpression": "attribute_not_exists(#ttl) OR #ttl <= :now",
        "ExpressionAttributeNames": {"#ttl": "ttl"},
        "ExpressionAttributeValues": _values(now=now),
    }
    try:
        _delete(keys.user_connection(conn.user_id, conn.connection_id), **condition)
        _delete(keys.connection(conn.connection_id), **condition)
    except ClientError as exc:
        if _is_condition_failure(exc):
            return False
        raise
    return True


# --- rooms ----------------------------------------------------------------------


def put_room(room: Room) -> None:
    """Write the participations, then the METADATA item that makes the room
    exist: a crash in between leaves participations that point at nothing,
    which every reader skips, and no room anyone can send to."""
    _batch_put([_participation(user_id, room) for user_id in room.participant_ids])
    values = {
        **keys.room(room.room_id),
        "chatRoomId": room.room_id,
        "name": room.name,
        "participantIds": list(room.participant_ids),
        "type": room.type,
        "activityId": room.activity_id,
        "createdAt": room.created_at,
    }
    _put(values, condition="attribute_not_exists(PK)")


def _participation(user_id: str, room: Room) -> dict[str, Any]:
    return {
        **keys.participation(user_id, room.room_id),
        "chatRoomId": room.room_id,
        "participantId": user_id,
        "joinedAt": room.created_at,
        "GSI1PK": keys.user_rooms_gsi_pk(user_id),
        "GSI1SK": room.created_at,
    }


def _batch_put(items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), BATCH_WRITE_SIZE):
        requests = [{"PutRequest": {"Item": _to_item(item)}} for item in items[start : start + BATCH_WRITE_SIZE]]
        for attempt in range(8):
            with _guard("BatchWriteItem"):
                response = client().batch_write_item(RequestItems={_table(): requests})
            requests = response.get("UnprocessedItems", {}).get(_table(), [])
            if not requests:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise StorageUnavailable("Storage is throttling writes, try again")


def get_room(room_id: str) -> Room | None:
    with _guard("GetItem"):
        item = client().get_item(TableName=_table(), Key=_to_item(keys.room(room_id)), ConsistentRead=True)
    values = _from_item(item.get("Item", {}))
    if not values:
        return None
    return Room(
        room_id=values["chatRoomId"],
        participant_ids=tuple(values.get("participantIds", ())),
        type=values.get("type", "group"),
        created_at=values.get("createdAt", ""),
        name=values.get("name"),
        activity_id=values.get("activityId"),
    )


def user_room_ids(user_id: str) -> list[str]:
    """Ids of the rooms the user participates in."""
    items = _query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=_values(pk=keys.user_pk(user_id), prefix=keys.ROOM_PREFIX),
        ProjectionExpression="SK",
    )
    return [keys.room_id_from_sk(item["SK"]) for item in items]


# --- messages ---------------------------------------------------------------------


def next_seq(room_id: str, *, sender_id: str | None) -> int:
    """Take the room's next sequence number. With a sender, this is also the
    participant check: it fails with NotAParticipant unless the room exists
    and lists the sender. Without one (system messages) the room must exist,
    else RoomNotFound. A seq whose message then fails to store is skipped."""
    condition, values = "attribute_exists(PK)", _values(zero=0, one=1)
    if sender_id is not None:
        condition, values = "contains(participantIds, :sender)", _values(zero=0, one=1, sender=sender_id)
    try:
        with _guard("UpdateItem"):
            response = client().update_item(
                TableName=_table(),
                Key=_to_item(keys.room(room_id)),
                UpdateExpression="SET lastSeq = if_not_exists(lastSeq, :zero) + :one",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
    except ClientError as exc:
        raise (NotAParticipant() if sender_id is not None else RoomNotFound()) from exc
    return int(_from_item(response["Attributes"])["lastSeq"])


def put_message(message: Message) -> None:
    values = {
        **keys.message(message.room_id, message.timestamp, message.message_id),
        "messageId": message.message_id,
        "chatRoomId": message.room_id,
        "senderId": message.sender_id,
        "content": message.content,
        "messageType": message.message_type,
        "readBy": list(message.read_by),
        "createdAt": message.created_at,
        "timestamp": message.timestamp,
        "seq": message.seq,
        "clientMessageId": message.client_message_id,
    }
    try:
        _put(values, condition="attribute_not_exists(PK)")
    except ClientError as exc:
        raise StorageUnavailable("Message id collision, try again") from exc


def update_last_message(message: Message, *, preview_length: int = 100) -> None:
    """Point LASTMESSAGE at message unless a later one (by seq) is there already."""
    try:
        with _guard("UpdateItem"):
            client().update_item(
                TableName=_table(),
                Key=_to_item(keys.last_message(message.room_id)),
                UpdateExpression="SET lastMessageAt = :at, lastMessage = :text, lastSeq = :seq, messageId = :id",
                ConditionExpression="attribute_not_exists(lastSeq) OR lastSeq < :seq",
                ExpressionAttributeValues=_values(
                    at=message.created_at,
                    text=message.content[:preview_length],
                    seq=message.seq,
                    id=message.message_id,
                ),
            )
    except ClientError:
        log.debug("LASTMESSAGE of %s is newer than seq %s", message.room_id, message.seq)


def get_last_message(room_id: str) -> dict[str, Any] | None:
    with _guard("GetItem"):
        item = client().get_item(TableName=_table(), Key=_to_item(keys.last_message(room_id)), ConsistentRead=True)
    return _from_item(item.get("Item", {})) or None


def room_messages(room_id: str) -> list[Message]:
    """Every message of the room in sort-key order (for tools and tests;
    paging comes with history)."""
    items = _query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=_values(pk=keys.room_pk(room_id), prefix=keys.MESSAGE_PREFIX),
        ConsistentRead=True,
    )
    return [_message_from(values) for values in items]


def _message_from(values: dict[str, Any]) -> Message:
    return Message(
        message_id=values["messageId"],
        room_id=values["chatRoomId"],
        sender_id=values["senderId"],
        content=values["content"],
        message_type=values.get("messageType", "user"),
        timestamp=int(values["timestamp"]),
        seq=int(values.get("seq", 0)),
        read_by=tuple(values.get("readBy", ())),
        client_message_id=values.get("clientMessageId"),
    )
