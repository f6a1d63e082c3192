"""What several test modules share: waiting for state, frames on a test
socket, users and rooms, raw table items, and live server processes."""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs

import jwt
from boto3.dynamodb.types import TypeDeserializer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from websockets.asyncio.client import connect as ws_connect

from chat import delivery, events, services
from chat.blocking import run_orm
from chat.storage import control
from devtools.servers import ROOT, free_port, wait_until_healthy
from tests import issuer as issuers
from tests.issuer import AUDIENCE, ISSUER

T = TypeVar("T")


async def eventually(probe: Callable[[], T], timeout: float = 5) -> T:
    """probe()'s first truthy answer, polled until timeout (for state that
    settles after the call that caused it, like LASTMESSAGE)."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()):
        assert time.monotonic() < deadline, "never came true"
        await asyncio.sleep(0.05)
    return answer


class GroupListener:
    """A member of a channel-layer group on a thread and event loop of its
    own, as in another server process, while sync code (the admin, a
    command) runs: with a pub/sub layer only a live subscriber hears."""

    def __init__(self, group: str, timeout: float = 5) -> None:
        self.group, self.timeout = group, timeout
        self.ready, self.message = threading.Event(), None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen()))

    async def _listen(self) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self.ready.set()
        try:
            self.message = await asyncio.wait_for(layer.receive(channel), self.timeout)
        finally:
            await layer.group_discard(self.group, channel)

    def __enter__(self) -> "GroupListener":
        self.thread.start()
        assert self.ready.wait(self.timeout), "could not join the group"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join()


async def approve(user_id: str, status: str = "approved") -> None:
    await run_orm(services.set_verification, user_ids=[user_id], status=status)


async def new_room(*participants: str, name: str | None = None) -> str:
    room = await services.create_room(participant_ids=list(participants), name=name)
    return room.room_id


async def connected_pair(connect, issuer, first: str, second: str) -> tuple:
    """Two approved members of a direct room, each connected: (first's
    socket, second's socket, room_id)."""
    await approve(first)
    await approve(second)
    room_id = await new_room(first, second)
    return await connect(issuer.token(first)), await connect(issuer.token(second)), room_id


# Presence frames arrive whenever a room-mate connects or leaves; tests about
# other things read past them.
PASSING_FRAMES = {"presence"}


async def next_frame(socket: WebsocketCommunicator, timeout: float = 5) -> dict:
    """The next frame that is not a presence frame."""
    while True:
        received = await socket.receive_json_from(timeout=timeout)
        if received["type"] not in PASSING_FRAMES:
            return received


def socket_user(socket: WebsocketCommunicator) -> str:
    """The user id of the token a test socket connected with."""
    [token] = parse_qs(socket.scope["query_string"].decode())["token"]
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def before_marker(socket: WebsocketCommunicator) -> list[dict]:
    """The frames the socket receives before a marker (a presence frame of
    nobody) sent now to its user's group: the channel layer hands this
    process what was published before the marker first, so once the server
    has answered the frame whose effects are checked, these are all of them.
    The user's other sockets get the marker too, and read past it."""
    marker = events.presence_frame(f"marker-{uuid.uuid4().hex}", online=True)
    await delivery.to_user(socket_user(socket), events.deliver(marker))
    received = []
    while (frame := await socket.receive_json_from(timeout=5)) != marker:
        received.append(frame)
    return received


async def quiet(socket: WebsocketCommunicator) -> bool:
    """True when nothing but presence frames comes before a marker (see
    before_marker)."""
    received = await before_marker(socket)
    assert all(frame["type"] in PASSING_FRAMES for frame in received), received
    return True


def raw_items(pk: str) -> list[dict]:
    """Every item under pk, straight from DynamoDB."""
    response = control.client().query(
        TableName=settings.DYNAMODB_TABLE,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    deserializer = TypeDeserializer()
    return [{k: deserializer.deserialize(v) for k, v in item.items()} for item in response["Items"]]


def connection_items(user_id: str) -> list[dict]:
    return [item for item in raw_items(f"USER#{user_id}") if item["SK"].startswith("CONNECTION#")]


async def send_message(socket, room_id: str, content: str) -> dict:
    await socket.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": content})
    message = await next_frame(socket)
    await next_frame(socket)  # ack
    return message["data"]


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


def start_daphne(env: dict[str, str], port: int, log_path: Path, *options: str) -> subprocess.Popen:
    """`python -m chatproject.serve` on port, as `make run` and production
    start it, once it answers /healthz; everything it prints (the access
    log included) goes to log_path."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatproject.serve",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                *options,
                "chatproject.asgi:application",
            ],
            cwd=ROOT,
            env={**env, "PORT": str(port), "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    assert wait_until_healthy(port, process, timeout=30), log_path.read_text()
    return process


def server_env(backend: dict[str, str], workdir: Path, issuer_port: int, layer: str, name: str) -> dict[str, str]:
    """The environment of daphne processes on this run's Redis and DynamoDB,
    with a table and channel prefix of their own (suffixed with name) and
    the dev issuer served on issuer_port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "COGNITO_", "DJANGO_"))}
    env.update(
        DJANGO_DEBUG="1",
        JWT_DEV_ISSUER="1",
        JWT_ISSUER=f"http://127.0.0.1:{issuer_port}/dev-issuer",
        JWT_DEV_KEY_PATH=str(workdir / "dev-key.pem"),
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DYNAMODB_ENDPOINT_URL=backend["endpoint"],
        DYNAMODB_TABLE=f"{backend['table']}-{name}",
        REDIS_URL=backend["redis_url"],
        CHANNEL_PREFIX=f"{backend['prefix']}-{name}",
        CHANNEL_LAYER=layer,
        # A stop (terminate()) ends well within the tests' wait(10).
        SHUTDOWN_TIMEOUT_SECONDS="5",
    )
    return env


async def receive(socket) -> dict:
    """The next frame that is not a presence frame."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if frame["type"] != "presence":
            return frame


async def send(socket, frame: dict) -> None:
    await socket.send(json.dumps(frame))


async def opened(server: Server, user: str, token: str | None = None):
    """A socket of user that has been through the whole handshake."""
    token = token or server.manage("issue_token", "--sub", user, "--name", user.title())
    # An unbounded queue keeps reading the socket even when a test leaves
    # frames unread, so the close handshake is not stuck behind them.
    socket = await ws_connect(server.ws_url(token), max_queue=None)
    await send(socket, {"action": "ping"})
    assert await receive(socket) == {"type": "pong"}
    return socket


@dataclass(frozen=True)
class LiveServer:
    url: str
    env: dict[str, str]
    output: Path

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@contextmanager
def live_server(
    backend: dict[str, str], issuer: issuers.TestIssuer, workdir: Path, name: str, **settings: str
) -> Iterator[LiveServer]:
    """`python -m chatproject.serve` on a free port, on this run's Redis and
    DynamoDB with a table and channel prefix of its own, trusting the test
    issuer; everything it prints (access log included) goes to one file."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "COGNITO_", "DJANGO_"))}
    env.update(
        DJANGO_DEBUG="1",
        PORT=str(port),
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        JWT_JWKS_URL=issuer.jwks_url,
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        DYNAMODB_ENDPOINT_URL=backend["endpoint"],
        DYNAMODB_TABLE=f"{backend['table']}-{name}",
        REDIS_URL=backend["redis_url"],
        CHANNEL_PREFIX=f"{backend['prefix']}-{name}",
        SHUTDOWN_TIMEOUT_SECONDS="5",  # a stop ends well within the wait(10) below
        **settings,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", env, workdir / "daphne.out")
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("create_table")
    process = start_daphne(env, port, server.output)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(10)
        control.client().delete_table(TableName=env["DYNAMODB_TABLE"])
