"""Fixtures on real services: dynalite (or DYNAMODB_ENDPOINT_URL), Redis (or
REDIS_URL), and a JWKS served over HTTP. Each run gets its own table and
channel-layer prefix, so runs never see each other's data."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import pytest
import pytest_asyncio
import redis
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from playwright.async_api import Browser, async_playwright

from chat import auth, limits, storage
from chat.hub import hub
from chat.services.liveness import liveness
from chat.storage import dynamo
from devtools.servers import Dynalite, redis_answers, start_local_redis, use_local_credentials
from tests.frames import FrameCheckingCommunicator
from tests.helpers import approve, next_frame
from tests.issuer import AUDIENCE, ISSUER, TestIssuer

RUN_ID = uuid.uuid4().hex[:10]
T = TypeVar("T")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SQLite's shared in-memory database locks whole tables across threads;
    the pool threads that run ORM calls need a file like production's."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session")
def dynamodb_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    use_local_credentials()
    if os.environ.get("DYNAMODB_ENDPOINT_URL"):
        yield os.environ["DYNAMODB_ENDPOINT_URL"]
        return
    server = Dynalite(tmp_path_factory.mktemp("dynamodb")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    if not redis_answers(url):
        if os.environ.get("REDIS_URL"):
            pytest.exit(f"REDIS_URL={url} does not answer", returncode=3)
        start_local_redis(url)
    return url


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    server = TestIssuer().serve()
    yield server
    server.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test runs on this run's services (the `backend` fixture, set up
    before any other) unless it is marked `unit`: `make test-unit` runs
    those alone, with neither Redis nor DynamoDB."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and item.get_closest_marker("unit") is None and "backend" not in names:
            names.insert(0, "backend")


@pytest.fixture(scope="session")
def backend(dynamodb_endpoint: str, redis_url: str, issuer: TestIssuer) -> Iterator[dict[str, str]]:
    """Point the app at this run's table, channel prefix and issuer."""
    table = f"chat-test-{RUN_ID}"
    prefix = f"chat-test-{RUN_ID}"
    settings.DYNAMODB_ENDPOINT_URL = dynamodb_endpoint
    settings.DYNAMODB_TABLE = table
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] = redis_url
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = prefix
    channel_layers.backends.clear()
    settings.JWT_ISSUER, settings.JWT_AUDIENCE, settings.JWT_JWKS_URL = ISSUER, AUDIENCE, issuer.jwks_url
    storage.reset_client()
    storage.create_table()
    yield {"endpoint": dynamodb_endpoint, "table": table, "prefix": prefix, "redis_url": redis_url}
    storage.delete_table()
    forget_run_keys(redis_url, prefix)


def forget_run_keys(redis_url: str, prefix: str) -> None:
    """Delete this run's keys from the Redis it was given: limits counters
    and channel-layer keys, under the run's prefix and under its servers'
    (`prefix-name`, tests/helpers.server_env), which the per-test clean-up
    does not reach (tests/test_redis_cleanup.py)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


@pytest_asyncio.fixture(autouse=True)
async def fresh_loop_clients() -> AsyncIterator[None]:
    """A channel layer per test: each async test has its own event loop, and
    channels-redis keeps receive state (a lock bound to one loop) that a
    test ending mid-receive would leave behind for the next one. The loop's
    storage session and limits client are closed with it."""
    channel_layers.backends.clear()
    yield
    await dynamo.close()
    await limits.close()


@pytest.fixture(autouse=True)
def fresh_limits(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per-user limits start afresh in each test: all tests of a run share
    its prefix, and users reused across tests would carry counters over.
    Unit tests have no Redis to clean."""
    backend = request.getfixturevalue("backend") if "backend" in request.fixturenames else None
    yield
    if backend is None:
        return
    client = redis.Redis.from_url(backend["redis_url"])
    stale = list(client.scan_iter(f"{backend['prefix']}:limits:*", count=1000))
    if stale:
        client.delete(*stale)
    client.close()


@pytest.fixture
def fresh_jwks() -> Iterator[None]:
    """Forget cached keys, for tests about fetching them."""
    auth._cache = None
    yield
    auth._cache = None


@pytest_asyncio.fixture
async def connect(issuer: TestIssuer) -> AsyncIterator:
    """connect(token, headers=..., ready=True) -> a communicator on /ws/.
    The server accepts before it authenticates, so with ready (the default)
    it also waits for a pong: the connection is then registered and joined.
    Every frame it receives must match docs/frames.schema.json."""
    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        token: str | None, *, headers: list | None = None, ready: bool = True
    ) -> WebsocketCommunicator:
        from chatproject.asgi import application  # here: it starts warming the JWKS of this run's issuer

        path = "/ws/" if token is None else f"/ws/?token={token}"
        communicator = FrameCheckingCommunicator(application, path, headers=headers or [])
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        opened.append(communicator)
        if ready:
            await communicator.send_json_to({"action": "ping"})
            # Room-mates' presence, announced while this socket registered,
            # may come first.
            assert await next_frame(communicator, timeout=10) == {"type": "pong"}
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()
    # Each test has its own event loop; the process's hub, heartbeat and
    # reaper must not outlive it.
    await hub().close()
    await liveness().close()


@pytest.fixture
def break_storage(settings) -> Iterator:
    """break_storage(): DynamoDB stops answering (connection refused) for the
    rest of the test."""

    def outage() -> None:
        settings.DYNAMODB_ENDPOINT_URL = "http://127.0.0.1:9"
        settings.DYNAMODB_RETRY_SECONDS = 0.3
        storage.reset_client()

    yield outage
    storage.reset_client()


@pytest.fixture
def call(async_client, issuer):
    """call(method, path, user, json=None) -> response, as user (None: no
    token), approved first unless verified=False."""
    approved: set[str] = set()

    async def request(
        method: str, path: str, user: str | None, json: dict | None = None, *, verified: bool = True, **extra
    ):
        if user and verified and user not in approved:
            await approve(user)
            approved.add(user)
        headers = {"Authorization": f"Bearer {issuer.token(user, **extra)}"} if user else {}
        send = getattr(async_client, method)
        if json is None:
            return await send(path, headers=headers)
        return await send(path, data=json, content_type="application/json", headers=headers)

    return request


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium (`make test` installs it), driven by Playwright's
    async API on the test's event loop (its sync API runs a loop of its own,
    which the async fixtures of every test would collide with)."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
        yield chromium
        await chromium.close()
