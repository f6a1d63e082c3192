"""The whole product over TCP: daphne started as `make run` starts it, the
dev issuer's JWKS fetched over HTTP, real WebSocket clients."""

import asyncio
import json
import urllib.request

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from chat.storage import control
from devtools.servers import free_port
from tests.helpers import Server, eventually, opened, receive, send, server_env, start_daphne


@pytest.fixture(scope="module", params=["redis-pubsub", "redis"])
def servers(request, backend, tmp_path_factory):
    """Two daphne processes sharing Redis, the table and the database, as
    two hosts behind a load balancer would; the first is the dev issuer.
    Once per Redis channel layer, each time on a fresh table and database."""
    workdir = tmp_path_factory.mktemp("e2e")
    ports = [free_port(), free_port()]
    env = server_env(backend, workdir, ports[0], request.param, request.param)
    Server(env, ports[0]).manage("migrate", "--noinput", "-v", "0")
    Server(env, ports[0]).manage("create_table")
    processes = [start_daphne(env, port, workdir / f"daphne-{port}.log") for port in ports]
    yield [Server(env, port) for port in ports]
    for process in processes:
        process.terminate()
        process.wait(10)
    control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


async def test_two_users_three_connections_verification_and_participation(server):
    room_id = server.manage("create_room", "--participants", "alice,bob", "--name", "E2E")
    server.manage("set_verification", "alice", "approved")
    server.manage("set_verification", "carol", "approved")
    alice, bob_phone, bob_laptop, carol = [await opened(server, u) for u in ("alice", "bob", "bob", "carol")]

    await send(alice, {"action": "sendMessage", "chatRoomId": room_id, "content": "hello bob", "clientMessageId": "a1"})
    message = await receive(alice)
    assert message["type"] == "message" and message["data"]["content"] == "hello bob"
    assert (await receive(alice))["data"]["clientMessageId"] == "a1"
    assert await receive(bob_phone) == message
    assert await receive(bob_laptop) == message

    await send(carol, {"action": "sendMessage", "chatRoomId": room_id, "content": "hi?"})
    assert (await receive(carol))["data"]["code"] == "NOT_A_PARTICIPANT"

    await send(bob_phone, {"action": "sendMessage", "chatRoomId": room_id, "content": "hi alice"})
    assert (await receive(bob_phone))["type"] == "VERIFICATION_REQUIRED"
    server.manage("set_verification", "bob", "approved")
    assert await receive(bob_phone) == {"type": "verification", "data": {"status": "approved"}}
    assert await receive(bob_laptop) == {"type": "verification", "data": {"status": "approved"}}
    await send(bob_phone, {"action": "sendMessage", "chatRoomId": room_id, "content": "hi alice"})
    reply = await receive(bob_phone)
    assert reply["data"]["content"] == "hi alice" and reply["data"]["seq"] == 2
    assert (await receive(bob_phone))["type"] == "ack"
    assert await receive(alice) == reply
    assert await receive(bob_laptop) == reply

    server.manage("send_system_message", room_id, "maintenance soon")
    for socket in (alice, bob_phone, bob_laptop):
        assert (await receive(socket))["data"]["messageType"] == "system"
    for socket in (alice, bob_phone, bob_laptop, carol):
        await socket.close()


async def test_bad_token_is_closed_with_4401_over_tcp(server):
    token = server.manage("issue_token", "--sub", "mallory") + "x"
    socket = await ws_connect(server.ws_url(token))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd.code == 4401


async def test_malformed_frame_gets_error_and_socket_stays_open(server):
    socket = await opened(server, "erin")
    await socket.send("{oops")
    assert (await receive(socket))["data"]["code"] == "INVALID_JSON"
    await send(socket, {"action": "ping"})
    assert await receive(socket) == {"type": "pong"}
    await socket.close()


async def test_concurrent_senders_on_two_processes_get_one_gapless_order(servers):
    users = [f"sender-{n}" for n in range(4)]
    room_id = servers[0].manage("create_room", "--participants", ",".join([*users, "watcher"]))
    for user in users:
        servers[0].manage("set_verification", user, "approved")
    tokens = {user: servers[0].manage("issue_token", "--sub", user) for user in [*users, "watcher"]}
    senders = [await opened(servers[n % 2], user, tokens[user]) for n, user in enumerate(users)]
    watchers = [await opened(server, "watcher", tokens["watcher"]) for server in servers]

    async def burst(socket, user: str) -> None:
        for n in range(10):
            await send(socket, {"action": "sendMessage", "chatRoomId": room_id, "content": f"{user}:{n}"})

    await asyncio.gather(*(burst(socket, user) for socket, user in zip(senders, users, strict=True)))
    seen = []
    for watcher in watchers:
        frames = [await receive(watcher) for _ in range(40)]
        seen.append([(f["data"]["seq"], f["data"]["content"]) for f in frames])
    # seq is the order: both members end with the same 40 messages under the
    # same unique, gapless seqs (arrival order may differ by what was in flight)
    assert sorted(seen[0]) == sorted(seen[1])
    assert sorted(seq for seq, _ in seen[0]) == list(range(1, 41))
    for arrival in seen:
        for user in users:  # each sender's own messages keep their order
            mine = [content for _, content in arrival if content.startswith(f"{user}:")]
            assert mine == [f"{user}:{n}" for n in range(10)]
    request = urllib.request.Request(
        f"http://127.0.0.1:{servers[1].port}/chat/rooms/{room_id}/messages?limit=100",
        headers={"Authorization": f"Bearer {tokens['watcher']}"},
    )
    history = json.loads(urllib.request.urlopen(request).read())["messages"]
    assert [m["seq"] for m in history] == list(range(1, 41))
    assert sorted((m["seq"], m["content"]) for m in history) == sorted(seen[0])
    timestamps = [m["timestamp"] for m in history]
    assert timestamps == sorted(set(timestamps))  # strictly increasing with seq, across processes
    # Both processes wrote LASTMESSAGE, each its newest: it ends at the newest of all.
    newest = history[-1]
    assert await eventually(lambda: last_message(servers[0], room_id) == (newest["content"], newest["createdAt"], 40))
    for socket in senders + watchers:
        await socket.close()


def last_message(server: Server, room_id: str) -> tuple | None:
    """The reference's LASTMESSAGE item of the room, as its readers see it."""
    item = (
        control.client()
        .get_item(
            TableName=server.env["DYNAMODB_TABLE"],
            Key={"PK": {"S": f"CHATROOM#{room_id}"}, "SK": {"S": "LASTMESSAGE"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return (item["lastMessage"]["S"], item["lastMessageAt"]["S"], int(item["lastSeq"]["N"])) if item else None
