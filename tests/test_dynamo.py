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

from chat import storage
from chat.errors import StorageUnavailable
from chat.storage import dynamo

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
        async with aiohttp.ClientSession() as session, session.post(self.upstream, data=body, headers=headers) as answer:
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
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 (aiohttp names no public way to read the bound port)
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
