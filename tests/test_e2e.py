"""The whole product over TCP: daphne started as `make run` starts it, the
dev issuer's JWKS fetched over HTTP, real WebSocket clients."""
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from devtools.servers import ROOT, free_port


class Server:
    def __init__(self, env: dict[str, str], port: int):
        self.env, self.port = env, port

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/?token={token}"


@pytest.fixture(scope="module")
def server(backend, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "COGNITO_", "DJANGO_"))}
    env.update(
        DJANGO_DEBUG="1",
        JWT_DEV_ISSUER="1",
        JWT_DEV_KEY_PATH=str(workdir / "dev-key.pem"),
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DYNAMODB_ENDPOINT_URL=backend["endpoint"],
        DYNAMODB_TABLE=backend["table"],
        REDIS_URL=backend["redis_url"],
        CHANNEL_PREFIX=backend["prefix"],
    )
    server = Server(env, port)
    server.manage("migrate", "--noinput", "-v", "0")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / "daphne.log", "w"),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (workdir / "daphne.log").read_text()
            time.sleep(0.2)
    yield server
    process.terminate()
    process.wait(10)


async def receive(socket) -> dict:
    """The next frame that is not a presence frame."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if frame["type"] != "presence":
            return frame


async def send(socket, frame: dict) -> None:
    await socket.send(json.dumps(frame))


async def opened(server: Server, user: str):
    """A socket of user that has been through the whole handshake."""
    socket = await ws_connect(server.ws_url(server.manage("issue_token", "--sub", user, "--name", user.title())))
    await send(socket, {"action": "ping"})
    assert await receive(socket) == {"type": "pong"}
    return socket


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
