"""The data plane's client against a real endpoint, through a fault-injecting
proxy on loopback: retries, deadlines, error mapping and credentials."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from chat import domain, storage
from chat.consumers import CLOSE_TRY_AGAIN
from chat.errors import StorageUnavailable
from chat.storage import dynamo
from tests.helpers import approve, new_room, next_frame

pytestmark = pytest.mark.django_db(transaction=True)
THROTTLED = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate exceeded"}


class FaultProxy:
    """Forwards DynamoDB requests to the real endpoint, after answering the
    first `failures` of them with `failure` (a status and a JSON body), or
    never answering at all while `frozen`."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.requests, self.failures, self.frozen = upstream, [], 0, False
        self.failure: tuple[int, dict] = (400, THROTTLED)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"target": request.headers.get("X-Amz-Target"), "auth": request.headers["Authorization"]})
        if self.frozen:
            await asyncio.sleep(3600)
        if self.failures:
            self.failures -= 1
            status, error = self.failure
            return web.json_response(error, status=status, content_type="application/x-amz-json-1.0")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream, data=body, headers=headers) as answer,
        ):
            return web.Response(status=answer.status, body=await answer.read(), content_type=answer.content_type)


@pytest_asyncio.fixture
async def proxy(settings) -> AsyncIterator[FaultProxy]:
    fault = FaultProxy(settings.DYNAMODB_ENDPOINT_URL)
    app = web.Application()
    app.router.add_post("/", fault.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # a frozen request is abandoned
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    settings.DYNAMODB_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    dynamo.reset()
    yield fault
    await dynamo.close()
    await runner.cleanup()
    dynamo.reset()


async def test_throttled_requests_are_retried_until_they_succeed(proxy):
    proxy.failures = 3
    assert await storage.get_room("no-such-room") is None
    assert [r["target"] for r in proxy.requests] == ["DynamoDB_20120810.GetItem"] * 4


async def test_server_errors_are_retried(proxy):
    proxy.failures, proxy.failure = 2, (500, {"__type": "InternalServerError", "message": "oops"})
    assert await storage.get_room("no-such-room") is None
    assert len(proxy.requests) == 3


async def test_a_frozen_endpoint_gives_storage_unavailable_within_the_retry_budget(proxy, settings):
    settings.DYNAMODB_READ_TIMEOUT_SECONDS, settings.DYNAMODB_RETRY_SECONDS = 0.2, 0.5
    dynamo.reset()
    proxy.frozen = True
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await storage.get_room("frozen")
    # The retry budget, plus the attempt that was under way when it ran out.
    assert time.monotonic() - started < 0.5 + 0.2 + 1
    assert len(proxy.requests) >= 2  # a read that timed out was retried


async def test_throttling_that_outlasts_the_budget_is_storage_unavailable(proxy, settings):
    settings.DYNAMODB_RETRY_SECONDS = 0.3
    dynamo.reset()
    proxy.failures = 10_000
    with pytest.raises(StorageUnavailable):
        await storage.get_room("throttled")


async def test_a_failed_condition_is_the_domains_own_error(proxy):
    item = {"PK": "DYNAMO#cond", "SK": "ONCE"}
    await dynamo.put(item, ConditionExpression="attribute_not_exists(PK)")
    with pytest.raises(dynamo.ConditionFailed):
        await dynamo.put(item, ConditionExpression="attribute_not_exists(PK)")
    assert len(proxy.requests) == 2  # a failed condition is an answer, not retried


async def test_an_invalid_request_is_refused_at_once(proxy):
    with pytest.raises(dynamo.ItemRejected):
        await dynamo.put({"PK": "DYNAMO#big", "SK": "ITEM", "blob": "x" * 500_000})
    assert len(proxy.requests) == 1


async def test_requests_are_signed_with_the_credentials_of_the_environment(proxy, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-environment")
    dynamo.reset()
    await storage.get_room("signed")
    [request] = proxy.requests
    assert "Credential=AKIDFROMENVIRONMENT/" in request["auth"]
    assert request["auth"].startswith("AWS4-HMAC-SHA256 ")


async def test_numbers_come_back_exact():
    big = 2**53 + 1  # beyond a float's exact integers
    await dynamo.put({"PK": "DYNAMO#number", "SK": "ITEM", "n": big})
    item = await dynamo.get({"PK": "DYNAMO#number", "SK": "ITEM"})
    assert item["n"] == big and json.dumps(int(item["n"])) == str(big)


async def test_a_deadline_bounds_a_call_with_its_retries(proxy, settings):
    settings.DYNAMODB_READ_TIMEOUT_SECONDS, settings.DYNAMODB_RETRY_SECONDS = 3, 4
    dynamo.reset()
    proxy.frozen = True
    started = time.monotonic()
    with pytest.raises(StorageUnavailable), storage.deadline(0.5):
        await storage.get_room("frozen")
    with pytest.raises(StorageUnavailable), storage.deadline(0.5):
        await storage.put_connection(domain.Connection("c-frozen", "u-frozen", "2026-01-01T00:00:00.000Z", 0))
    assert time.monotonic() - started < 2 * 0.5 + 1  # not the 3 s of one read timeout


async def test_a_send_is_answered_within_its_deadline_and_can_be_retried(proxy, settings, connect, issuer):
    settings.DYNAMODB_READ_TIMEOUT_SECONDS, settings.DYNAMODB_RETRY_SECONDS = 3, 4
    settings.SEND_DEADLINE_SECONDS = 1
    dynamo.reset()
    await approve("deadline-a")
    room_id = await new_room("deadline-a", "deadline-b")
    socket = await connect(issuer.token("deadline-a"))
    send = {"action": "sendMessage", "chatRoomId": room_id, "content": "in time?", "clientMessageId": "d1"}
    proxy.frozen = True
    started = time.monotonic()
    await socket.send_json_to(send)
    refusal = await next_frame(socket, timeout=10)
    assert time.monotonic() - started < 1 + 1
    assert refusal["data"]["code"] == "STORAGE_UNAVAILABLE"
    proxy.frozen = False
    await socket.send_json_to(send)
    assert (await next_frame(socket, timeout=10))["data"]["seq"] == 1
    assert (await next_frame(socket))["type"] == "ack"
    assert [m.content for m in (await storage.messages_page(room_id, limit=10))[0]] == ["in time?"]


async def test_a_handshake_is_closed_with_4503_within_its_deadline(proxy, settings, connect, issuer):
    settings.DYNAMODB_READ_TIMEOUT_SECONDS, settings.DYNAMODB_RETRY_SECONDS = 3, 4
    settings.CONNECT_DEADLINE_SECONDS = 1
    dynamo.reset()
    proxy.frozen = True
    socket = await connect(issuer.token("deadline-c"), ready=False)
    started = time.monotonic()
    assert await socket.receive_output(timeout=10) == {"type": "websocket.close", "code": CLOSE_TRY_AGAIN}
    assert time.monotonic() - started < 1 + 1
