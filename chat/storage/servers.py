"""Heartbeats of server processes (SERVERS / SERVER#{owner}), so that the
connections of a process that died can be told from live ones.

A heartbeat holds `expiresAt` (Unix seconds): past it, its process counts as
dead. A reaper claims a dead process's item (`reaper`, `leaseUntil`) before
clearing its connections, so two reapers do not do the work twice, and a
reaper that dies mid-way is taken over once its lease runs out. The item's
`ttl` is set a connection's lifetime past `expiresAt`: where DynamoDB
enforces TTL it may drop the item only when the connections it stands for
would have expired anyway."""

from dataclasses import dataclass

from django.conf import settings

from chat import keys
from chat.storage import dynamo
from chat.storage.dynamo import ConditionFailed


@dataclass(frozen=True)
class Heartbeat:
    owner: str
    expires_at: int


def _expiry(expires_at: int) -> dict[str, int]:
    return {"expiresAt": expires_at, "ttl": expires_at + settings.CONNECTION_TTL_SECONDS}


async def start_heartbeat(owner: str, *, expires_at: int) -> None:
    """Write the first heartbeat of a new owner id (which must be unique:
    an existing item raises ConditionFailed)."""
    await dynamo.put(
        {**keys.server_heartbeat(owner), "Type": "ServerHeartbeat", "owner": owner, **_expiry(expires_at)},
        ConditionExpression="attribute_not_exists(PK)",
    )


async def beat(owner: str, *, expires_at: int) -> bool:
    """Move the heartbeat's expiry to expires_at. Returns False, writing
    nothing, if a reaper has claimed or deleted it: the owner was taken for
    dead and its connections are being (or have been) reaped."""
    expiry = _expiry(expires_at)
    try:
        await dynamo.update(
            keys.server_heartbeat(owner),
            UpdateExpression="SET expiresAt = :expiresAt, #ttl = :ttl",
            ConditionExpression="attribute_exists(PK) AND attribute_not_exists(reaper)",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=dynamo.values(expiresAt=expiry["expiresAt"], ttl=expiry["ttl"]),
        )
    except ConditionFailed:
        return False
    return True


async def dead_servers(*, now: int) -> list[Heartbeat]:
    """Processes whose heartbeat expired and whom no reaper holds (one
    Query of the one small partition all heartbeats share)."""
    items = await dynamo.query(
        KeyConditionExpression="PK = :pk",
        FilterExpression="expiresAt < :now AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)",
        ExpressionAttributeValues=dynamo.values(pk=keys.SERVERS_PK, now=now),
        ConsistentRead=True,
    )
    return [Heartbeat(owner=item["owner"], expires_at=int(item["expiresAt"])) for item in items]


async def claim_dead_server(owner: str, *, reaper: str, now: int, lease_until: int) -> bool:
    """Take the job of reaping owner until lease_until. Returns False if
    owner is alive again, gone, or held by another reaper's lease."""
    try:
        await dynamo.update(
            keys.server_heartbeat(owner),
            UpdateExpression="SET reaper = :reaper, leaseUntil = :leaseUntil",
            ConditionExpression=(
                "attribute_exists(PK) AND expiresAt < :now AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)"
            ),
            ExpressionAttributeValues=dynamo.values(reaper=reaper, leaseUntil=lease_until, now=now),
        )
    except ConditionFailed:
        return False
    return True


async def delete_heartbeat(owner: str, *, reaper: str) -> None:
    """Forget a reaped process, unless another reaper has taken over."""
    try:
        await dynamo.delete(
            keys.server_heartbeat(owner),
            ConditionExpression="reaper = :reaper",
            ExpressionAttributeValues=dynamo.values(reaper=reaper),
        )
    except ConditionFailed:
        pass
