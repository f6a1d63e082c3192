"""Graceful restart over TCP: SIGTERM to `python -m chatproject.serve` closes
its sockets with 4012 so clients reconnect elsewhere at once, deletes their
connection items, tells room-mates on other processes that they went
offline, and the process exits within SHUTDOWN_TIMEOUT_SECONDS, even when
DynamoDB stops answering in the middle of it."""

import asyncio
import json
import signal
import time

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from chat import keys
from chat.consumers import CLOSE_RESTARTING
from chat.storage import control, dynamo
from devtools.servers import Dynalite, free_port
from tests.helpers import Server, opened, server_env, start_daphne

SHUTDOWN_TIMEOUT = 4
# The interpreter's own exit (threads joined, modules torn down) on top.
EXIT_MARGIN = 5


def connection_items(table: str, user_id: str) -> list[dict]:
    response = control.client().query(
        TableName=table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
        ExpressionAttributeValues=dynamo.values(pk=keys.user_pk(user_id), prefix=keys.CONNECTION_PREFIX),
        ConsistentRead=True,
    )
    return response["Items"]


async def presence_of(socket: ClientConnection, user_id: str) -> bool:
    """The next presence state announced for user_id."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if frame["type"] == "presence" and frame["data"]["userId"] == user_id:
            return frame["data"]["online"]


async def close_frame(socket: ClientConnection) -> tuple[int, str] | None:
    """The code and reason the server closed socket with."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    received = closed.value.rcvd
    return (received.code, received.reason) if received else None


@pytest.fixture
def restarted_and_survivor(backend, tmp_path):
    """Two daphne processes on this run's Redis and DynamoDB; the second
    serves the dev issuer, so that it answers while the first stops."""
    ports = [free_port(), free_port()]
    env = {**server_env(backend, tmp_path, ports[1], "redis-pubsub", "restart")}
    env["SHUTDOWN_TIMEOUT_SECONDS"] = str(SHUTDOWN_TIMEOUT)
    Server(env, ports[1]).manage("migrate", "--noinput", "-v", "0")
    Server(env, ports[1]).manage("create_table")
    logs = [tmp_path / f"daphne-{port}.log" for port in ports]
    processes = [start_daphne(env, port, log) for port, log in zip(ports, logs, strict=True)]
    yield processes, [Server(env, port) for port in ports], logs
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
    control.client().delete_table(TableName=env["DYNAMODB_TABLE"])


async def test_sigterm_closes_sockets_with_4012_clears_them_and_exits(restarted_and_survivor):
    (restarted, _), (server_1, server_2), (log_1, _) = restarted_and_survivor
    table = server_1.env["DYNAMODB_TABLE"]
    server_2.manage("create_room", "--participants", "restart-a,restart-b")
    token_a = server_2.manage("issue_token", "--sub", "restart-a")
    b = await opened(server_2, "restart-b", server_2.manage("issue_token", "--sub", "restart-b"))
    a_sockets = [await opened(server_1, "restart-a", token_a) for _ in range(2)]
    assert await presence_of(b, "restart-a") is True
    assert len(connection_items(table, "restart-a")) == 2

    restarted.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    restarting = (CLOSE_RESTARTING, "server restarting")
    assert [await close_frame(socket) for socket in a_sockets] == [restarting, restarting]
    assert await presence_of(b, "restart-a") is False
    assert connection_items(table, "restart-a") == []
    assert len(connection_items(table, "restart-b")) == 1  # the other process's are untouched
    assert restarted.wait(SHUTDOWN_TIMEOUT + EXIT_MARGIN) == 0
    assert time.monotonic() - signalled < SHUTDOWN_TIMEOUT + EXIT_MARGIN
    output = log_1.read_text()
    assert "closing 2 connection(s) with 4012" in output, output
    assert "left to the reaper" not in output, output
    assert "Traceback" not in output, output
    await b.close()


@pytest.fixture
def stalling_dynamodb(tmp_path):
    """A dynalite of this test's own, which the test may freeze (SIGSTOP)."""
    server = Dynalite(tmp_path / "dynamodb").start()
    yield server
    assert server.process is not None
    server.process.send_signal(signal.SIGCONT)
    server.stop()


async def test_sigterm_exits_within_the_bound_when_dynamodb_stalls(backend, tmp_path, stalling_dynamodb):
    port = free_port()
    env = {**server_env(backend, tmp_path, port, "redis-pubsub", "stall")}
    env.update(DYNAMODB_ENDPOINT_URL=stalling_dynamodb.url, SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT))
    server = Server(env, port)
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("create_table")
    log = tmp_path / "daphne.log"
    process = start_daphne(env, port, log)
    try:
        socket = await opened(server, "stall-a")
        assert stalling_dynamodb.process is not None
        stalling_dynamodb.process.send_signal(signal.SIGSTOP)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert await close_frame(socket) == (CLOSE_RESTARTING, "server restarting")  # at once, before the teardown
        assert process.wait(SHUTDOWN_TIMEOUT + EXIT_MARGIN) == 0
        assert time.monotonic() - signalled < SHUTDOWN_TIMEOUT + EXIT_MARGIN
        assert "1 connection(s) not torn down in time, left to the reaper" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
