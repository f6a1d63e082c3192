"""GET /readyz, as a load balancer sees it: 200 while Redis and DynamoDB
answer, else 503 naming the part that does not, within READY_TIMEOUT_SECONDS
however the part fails."""

import copy
import socket
import time
from collections.abc import Iterator

import pytest

from chat import storage
from devtools.servers import free_port
from tests.openapi import conforms


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def point_redis_at(settings, port: int) -> None:
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = f"redis://127.0.0.1:{port}"
    settings.CHANNEL_LAYERS = layers


async def readyz(async_client) -> tuple[int, dict]:
    response = await async_client.get("/readyz")
    return response.status_code, conforms(response, "/readyz")


async def test_ready_while_redis_and_dynamodb_answer(async_client):
    status, body = await readyz(async_client)
    assert status == 200
    assert body["status"] == "ok" and body["failing"] == []
    assert body["checks"]["redis"]["ok"] and body["checks"]["dynamodb"]["ok"]


async def test_redis_refusing_connections_is_named(async_client, settings):
    point_redis_at(settings, free_port())
    status, body = await readyz(async_client)
    assert status == 503
    assert body["status"] == "unavailable" and body["failing"] == ["redis"]
    assert body["checks"]["redis"]["error"] == "host 1 of 1: Connection refused"
    assert body["checks"]["dynamodb"]["ok"]


async def test_dynamodb_down_is_named(async_client, break_storage):
    break_storage()
    status, body = await readyz(async_client)
    assert status == 503
    assert body["failing"] == ["dynamodb"]
    assert not body["checks"]["dynamodb"]["ok"] and body["checks"]["redis"]["ok"]


async def test_parts_that_never_answer_fail_within_the_bound(async_client, settings, silent_port):
    settings.READY_TIMEOUT_SECONDS = 0.5
    # Without the bound, each would wait for its client's own timeouts and retries.
    settings.DYNAMODB_RETRY_SECONDS = 60
    settings.DYNAMODB_ENDPOINT_URL = f"http://127.0.0.1:{silent_port}"
    storage.reset_client()
    point_redis_at(settings, silent_port)
    try:
        started = time.monotonic()
        status, body = await readyz(async_client)
        took = time.monotonic() - started
    finally:
        storage.reset_client()
    assert status == 503 and body["failing"] == ["dynamodb", "redis"]
    assert body["checks"]["dynamodb"]["error"] == "no answer within 0.5 s"
    assert body["checks"]["redis"]["error"] == "host 1 of 1: no answer within 0.5 s"
    assert took < 10, "a readiness check must not wait for the clients' own timeouts"
