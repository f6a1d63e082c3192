"""The connection registry (reference items Connection and UserConnection)
and presence. No reader trusts TTL deletion: expired items are ignored."""

from collections.abc import Iterator
from typing import Any

from chat import keys
from chat.domain import Connection
from chat.storage import batching, control, dynamo, schema
from chat.storage.dynamo import ConditionFailed

# Presence is one item per user with an attribute per live connection,
# c_{connectionId} = its ttl; a user is online while any of them is unexpired.
PRESENCE_ATTRIBUTE = "c_"


async def put_connection(conn: Connection) -> None:
    """Write Connection, then UserConnection (each through the group commit,
    so a connect storm shares calls). Deletes run in the opposite order, so
    a UserConnection never exists without its Connection and the reaper,
    which scans Connection items, finds every pair."""
    common = {
        "connectionId": conn.connection_id,
        "connectedAt": conn.connected_at,
        "ttl": conn.ttl,
        "owner": conn.owner,
    }
    by_owner: dict[str, str] = {}
    if conn.owner is not None:
        by_owner = {"GSI1PK": keys.server_connections_gsi_pk(conn.owner), "GSI1SK": conn.connection_id}
    connection_item = {**keys.connection(conn.connection_id), "Type": "Connection", "userId": conn.user_id}
    await batching.put({**connection_item, **common, **by_owner})
    await batching.put({**keys.user_connection(conn.user_id, conn.connection_id), "Type": "UserConnection", **common})


async def delete_connection(user_id: str, connection_id: str) -> None:
    """Delete both items (through the group commit); missing items are fine."""
    await batching.delete(keys.user_connection(user_id, connection_id))
    await batching.delete(keys.connection(connection_id))


def _connection_from(values: dict[str, Any]) -> Connection:
    return Connection(
        connection_id=values["connectionId"],
        user_id=values["userId"],
        connected_at=values["connectedAt"],
        ttl=int(values["ttl"]),
        owner=values.get("owner"),
    )


async def get_connection(connection_id: str, *, now: int) -> Connection | None:
    """The live connection, or None if it is unknown or expired."""
    values = await dynamo.get(keys.connection(connection_id))
    if not values or int(values.get("ttl", 0)) <= now:
        return None
    return _connection_from(values)


async def user_connections(user_id: str, *, now: int) -> list[Connection]:
    """The user's unexpired connections (their UserConnection items)."""
    items = await dynamo.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        FilterExpression="#ttl > :now",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues=dynamo.values(pk=keys.user_pk(user_id), prefix=keys.CONNECTION_PREFIX, now=now),
        ConsistentRead=True,
    )
    return [_connection_from({**item, "userId": user_id}) for item in items]


async def user_connection_ids(user_id: str, *, now: int) -> list[str]:
    """Ids of the user's unexpired connections."""
    return [conn.connection_id for conn in await user_connections(user_id, now=now)]


def expired_connections(*, now: int) -> Iterator[Connection]:
    """Connection items whose ttl has passed. A blocking Scan (the control
    plane): for the periodic reaper on the blocking pool, never for a
    request path."""
    items = control.scan(
        FilterExpression="begins_with(PK, :prefix) AND SK = :meta AND #ttl <= :now",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues=dynamo.values(prefix=keys.CONNECTION_PREFIX, meta=keys.METADATA, now=now),
    )
    for item in items:
        yield _connection_from(item)


async def delete_expired_connection(conn: Connection, *, now: int) -> bool:
    """Delete both items of conn if they are still expired (a live consumer
    may have refreshed them since the scan). Returns whether it did."""
    return await _delete_pair(
        conn,
        ConditionExpression="attribute_not_exists(#ttl) OR #ttl <= :now",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues=dynamo.values(now=now),
    )


async def server_connections(owner: str) -> list[Connection]:
    """The connections a server process recorded as its own (GSI1; an
    index read is eventually consistent, so only for a process that has
    been dead for a while)."""
    items = await dynamo.query(
        IndexName=schema.SERVER_CONNECTIONS_INDEX,
        KeyConditionExpression="GSI1PK = :pk",
        ExpressionAttributeValues=dynamo.values(pk=keys.server_connections_gsi_pk(owner)),
    )
    return [_connection_from(item) for item in items]


async def delete_owned_connection(conn: Connection) -> bool:
    """Delete both items of conn if they still belong to conn.owner (items
    of any other process are never touched). Returns whether the
    Connection item was there to delete: of two reapers, one says yes."""
    return await _delete_pair(
        conn,
        ConditionExpression="attribute_not_exists(PK) OR #owner = :owner",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues=dynamo.values(owner=conn.owner),
    )


async def _delete_pair(conn: Connection, **condition: Any) -> bool:
    """Delete UserConnection, then Connection (the reverse of put), each
    under condition; False if either condition failed or the Connection
    item was already gone."""
    try:
        await dynamo.delete(keys.user_connection(conn.user_id, conn.connection_id), **condition)
        old = await dynamo.delete(keys.connection(conn.connection_id), ReturnValues="ALL_OLD", **condition)
    except ConditionFailed:
        return False
    return bool(old)


# --- presence ---------------------------------------------------------------------


def _live(values: dict[str, Any], now: int) -> int:
    return sum(1 for name, ttl in values.items() if name.startswith(PRESENCE_ATTRIBUTE) and int(ttl) > now)


async def set_online(conn: Connection, *, now: int) -> bool:
    """Record conn as live (or push its ttl forward). Returns whether it is
    the user's only live connection, i.e. the user just came online."""
    attributes = await dynamo.update(
        keys.presence(conn.user_id),
        UpdateExpression="SET #conn = :ttl",
        ExpressionAttributeNames={"#conn": f"{PRESENCE_ATTRIBUTE}{conn.connection_id}"},
        ExpressionAttributeValues=dynamo.values(ttl=conn.ttl),
        ReturnValues="ALL_NEW",
    )
    return _live(attributes, now) == 1


async def set_offline(conn: Connection, *, now: int) -> bool:
    """Forget conn. Returns whether the user has no live connection left."""
    attributes = await dynamo.update(
        keys.presence(conn.user_id),
        UpdateExpression="REMOVE #conn",
        ExpressionAttributeNames={"#conn": f"{PRESENCE_ATTRIBUTE}{conn.connection_id}"},
        ReturnValues="ALL_NEW",
    )
    return _live(attributes, now) == 0


async def online_users(user_ids: list[str], *, now: int) -> set[str]:
    """Which of user_ids have a live connection (one batch read per 100)."""
    found = await dynamo.batch_get([keys.presence(user_id) for user_id in user_ids])
    return {user_id for user_id in user_ids if _live(found.get(dynamo.key_id(keys.presence(user_id)), {}), now)}
