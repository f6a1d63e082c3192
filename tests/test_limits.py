"""Per-user limits (chat/limits.py) on the real Redis: sends, sockets and
rooms are counted per user over every socket and process."""

import asyncio
import copy
import logging
import math
import threading

import pytest
import redis

from chat import limits
from chat.consumers import CLOSE_TOO_MANY_SOCKETS
from chat.errors import RateLimited
from chat.ratelimit import Throttle
from tests.helpers import approve, new_room, next_frame, raw_items
from tests.openapi import conforms

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_refill(settings):
    """Limits small enough to reach in a test, refilling too slowly to matter."""
    settings.USER_SEND_RATE, settings.USER_SEND_BURST = 0.001, 3
    settings.USER_ROOMS_PER_HOUR = 2


async def send_outcome(socket, room_id: str, content: str) -> dict:
    """The ack or error frame answering a send (the user's other sockets'
    messages that arrive meanwhile are read past)."""
    await socket.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": content})
    while (frame := await next_frame(socket))["type"] not in {"ack", "error"}:
        pass
    return frame


def in_another_process(coroutine_fn) -> object:
    """Run coroutine_fn() on a thread and event loop of its own, so the
    limiter builds a Redis client of its own there, as another server
    process would. Returns its result or the exception it raised."""
    outcome: list = []

    async def run() -> None:
        try:
            outcome.append(await coroutine_fn())
        except Exception as error:
            outcome.append(error)
        finally:
            await limits.close()

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join()
    return outcome[0]


async def test_sends_of_all_a_users_sockets_share_one_limit_and_others_are_unaffected(connect, issuer, slow_refill):
    await approve("chatty")
    await approve("calm")
    room_id = await new_room("chatty", "calm")
    tabs = [await connect(issuer.token("chatty")) for _ in range(3)]
    calm = await connect(issuer.token("calm"))

    answers = [await send_outcome(tab, room_id, f"m{n}") for n, tab in enumerate(tabs)]
    assert [answer["type"] for answer in answers] == ["ack"] * 3
    refused = await send_outcome(tabs[0], room_id, "one too many")
    assert refused["data"]["code"] == "RATE_LIMITED"
    assert refused["data"]["action"] == "sendMessage"
    assert isinstance(refused["data"]["retryAfterMs"], int) and refused["data"]["retryAfterMs"] > 0
    assert (await send_outcome(calm, room_id, "I can still talk"))["type"] == "ack"


async def test_the_send_limit_holds_across_processes(slow_refill):
    for _ in range(3):
        await limits.check_send("roaming")
    refused = in_another_process(lambda: limits.check_send("roaming"))
    assert isinstance(refused, RateLimited)
    assert refused.retry_after_ms > 0
    assert in_another_process(lambda: limits.check_send("someone-else")) is None


async def test_socket_over_the_limit_is_closed_with_4429_and_leaves_no_items(connect, issuer, settings):
    settings.USER_MAX_SOCKETS = 2
    first, _ = await connect(issuer.token("tabby")), await connect(issuer.token("tabby"))
    extra = await connect(issuer.token("tabby"), ready=False)
    assert await extra.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_TOO_MANY_SOCKETS}
    registered = [item for item in raw_items("USER#tabby") if item["SK"].startswith("CONNECTION#")]
    assert len(registered) == 2

    await first.disconnect()  # frees its slot
    await connect(issuer.token("tabby"))


async def test_a_released_slot_is_not_renewed_by_a_late_refresh(settings):
    settings.USER_MAX_SOCKETS = 1
    assert await limits.claim_socket(user_id="solo", socket_id="a")
    assert not await limits.claim_socket(user_id="solo", socket_id="b")
    await limits.release_socket(user_id="solo", socket_id="a")
    await limits.refresh_socket(user_id="solo", socket_id="a")
    assert await limits.claim_socket(user_id="solo", socket_id="b")


async def test_slot_of_a_socket_never_closed_lapses_on_its_own(settings):
    settings.USER_MAX_SOCKETS, settings.USER_SOCKET_SLOT_SECONDS = 1, 1
    assert await limits.claim_socket(user_id="orphan", socket_id="on-a-dead-process")
    assert not await limits.claim_socket(user_id="orphan", socket_id="new")
    for _ in range(50):  # polls for up to 5 s; the slot lapses after 1
        if await limits.claim_socket(user_id="orphan", socket_id="new"):
            return
        await asyncio.sleep(0.1)
    pytest.fail("the orphaned slot never lapsed")


async def test_rooms_over_the_hourly_limit_get_429_with_retry_after(call, slow_refill):
    await approve("founder")
    for n in range(2):
        response = await call("post", "/chat/rooms", "founder", {"participantIds": [f"guest-{n}"]})
        assert response.status_code == 201
    refused = await call("post", "/chat/rooms", "founder", {"participantIds": ["guest-3"]})
    body = conforms(refused, "/chat/rooms", "post")
    assert refused.status_code == 429
    assert body["error"]["code"] == "RATE_LIMITED"
    assert refused["Retry-After"] == str(math.ceil(body["error"]["retryAfterMs"] / 1000))
    listed = conforms(await call("get", "/chat/rooms", "founder"), "/chat/rooms")["rooms"]
    assert len(listed) == 2

    joined = await call("post", "/activities/founders-hike/join", "founder")
    assert conforms(joined, "/activities/{activityId}/join", "post")["error"]["code"] == "RATE_LIMITED"
    assert raw_items("ACTIVITY#founders-hike") == []


async def test_deployments_with_different_prefixes_keep_separate_counts(settings, slow_refill, backend):
    for _ in range(3):
        await limits.check_send("shared-name")
    with pytest.raises(RateLimited):
        await limits.check_send("shared-name")
    other = copy.deepcopy(settings.CHANNEL_LAYERS)
    other["default"]["CONFIG"]["prefix"] = f"{backend['prefix']}-other"
    settings.CHANNEL_LAYERS = other
    client = redis.Redis.from_url(backend["redis_url"])
    try:
        await limits.check_send("shared-name")
        assert client.exists(f"{backend['prefix']}:limits:sends:shared-name")
        assert client.exists(f"{backend['prefix']}-other:limits:sends:shared-name")
    finally:
        client.delete(f"{backend['prefix']}-other:limits:sends:shared-name")
        client.close()


async def test_without_redis_checks_pass_with_a_warning(settings, slow_refill, caplog, monkeypatch):
    monkeypatch.setattr(limits, "_outage_log", Throttle(10.0))
    await limits.close()
    unreachable = copy.deepcopy(settings.CHANNEL_LAYERS)
    unreachable["default"]["CONFIG"]["hosts"][0]["address"] = "redis://127.0.0.1:9"
    settings.CHANNEL_LAYERS = unreachable
    with caplog.at_level(logging.WARNING, logger="chat.limits"):
        for _ in range(4):
            await limits.check_send("offline")
        assert await limits.claim_socket(user_id="offline", socket_id="s")
    assert [record.levelname for record in caplog.records] == ["WARNING"]
