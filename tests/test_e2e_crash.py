"""A server process killed outright (SIGKILL: no disconnect runs) over TCP:
the processes that live on clear its connections and announce its users
offline, and notice nothing else."""

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import ClientConnection

from chat import keys
from chat.storage import control, dynamo
from devtools.servers import free_port
from tests.helpers import Server, eventually, opened, send, server_env, start_daphne

# Short enough for a test; the defaults are checked in tests/test_liveness.py.
LIVENESS = {"SERVER_HEARTBEAT_SECONDS": "1", "SERVER_DEAD_AFTER_SECONDS": "3", "SERVER_REAP_SECONDS": "1"}
# Dead after 3 s, noticed within 1.2 s more, announced 0.25 s later: room to spare.
REAPED_WITHIN = 15


@pytest.fixture
def victim_and_survivor(backend, tmp_path):
    """Two daphne processes with short liveness settings; the second serves
    the dev issuer, so that it still answers when the first is killed."""
    ports = [free_port(), free_port()]
    env = {**server_env(backend, tmp_path, ports[1], "redis-pubsub", "crash"), **LIVENESS}
    Server(env, ports[1]).manage("migrate", "--noinput", "-v", "0")
    Server(env, ports[1]).manage("create_table")
    processes = [start_daphne(env, port, tmp_path / f"daphne-{port}.log") for port in ports]
    yield processes, [Server(env, port) for port in ports]
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
    control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


def items(table: str, partition: str, prefix: str = "") -> list[dict]:
    """The partition's items whose sort key starts with prefix."""
    response = control.client().query(
        TableName=table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=dynamo.values(pk=partition, prefix=prefix),
        ConsistentRead=True,
    )
    return [dynamo.from_item(item) for item in response["Items"]]


def heartbeats(table: str) -> dict[str, int]:
    """Each server process's heartbeat expiry, by owner."""
    return {item["owner"]: int(item["expiresAt"]) for item in items(table, keys.SERVERS_PK)}


def live_presence(table: str, user_id: str) -> list[str]:
    """The connection attributes of the user's presence item."""
    [presence] = items(table, keys.user_pk(user_id), keys.presence(user_id)["SK"]) or [{}]
    return [name for name in presence if name.startswith("c_")]


async def presence_of(socket: ClientConnection, user_id: str, timeout: float) -> bool:
    """The next presence state announced for user_id."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), deadline - time.monotonic()))
        if frame["type"] == "presence" and frame["data"]["userId"] == user_id:
            return frame["data"]["online"]


async def test_a_killed_servers_users_go_offline_and_its_connections_are_reaped(victim_and_survivor):
    (victim, _), (server_1, server_2) = victim_and_survivor
    table = server_1.env["DYNAMODB_TABLE"]
    server_2.manage("create_room", "--participants", "crash-a,crash-b")
    b = await opened(server_2, "crash-b", server_2.manage("issue_token", "--sub", "crash-b"))
    a = await opened(server_1, "crash-a", server_2.manage("issue_token", "--sub", "crash-a"))
    assert await presence_of(b, "crash-a", timeout=5) is True
    [a_item] = items(table, keys.user_pk("crash-a"), keys.CONNECTION_PREFIX)
    [b_item] = items(table, keys.user_pk("crash-b"), keys.CONNECTION_PREFIX)
    assert a_item["owner"] != b_item["owner"]
    # Three heartbeats of each server (so two reaper rounds at least): nothing live is touched.
    first = heartbeats(table)
    await eventually(lambda: all(heartbeats(table).get(owner, 0) >= at + 3 for owner, at in first.items()), timeout=10)
    assert items(table, keys.user_pk("crash-a"), keys.CONNECTION_PREFIX) == [a_item]

    victim.kill()
    killed = time.monotonic()
    assert await presence_of(b, "crash-a", timeout=REAPED_WITHIN) is False
    assert time.monotonic() - killed < REAPED_WITHIN
    assert items(table, keys.user_pk("crash-a"), keys.CONNECTION_PREFIX) == []
    assert items(table, *keys.connection(a_item["connectionId"]).values()) == []
    assert live_presence(table, "crash-a") == []
    assert await eventually(lambda: [i["owner"] for i in items(table, keys.SERVERS_PK)] == [b_item["owner"]])

    # The survivor and its socket never noticed.
    assert items(table, keys.user_pk("crash-b"), keys.CONNECTION_PREFIX) == [b_item]
    assert live_presence(table, "crash-b") == [f"c_{b_item['connectionId']}"]
    await send(b, {"action": "ping"})
    assert json.loads(await asyncio.wait_for(b.recv(), 5)) == {"type": "pong"}
    await asyncio.gather(a.close(), b.close())
