"""Presence: room-mates hear when a user's first connection opens and when
their last one closes, and nothing in between."""

import asyncio
import json
import time

import pytest

from chat import delivery, domain, services, storage
from tests.helpers import connection_items, eventually, new_room

pytestmark = pytest.mark.django_db(transaction=True)


async def test_first_open_and_last_close_are_announced_to_room_mates(connect, issuer):
    room_id = await new_room("watcher", "walker")
    watcher = await connect(issuer.token("watcher"))
    first = await connect(issuer.token("walker"))
    assert await watcher.receive_json_from(timeout=5) == {
        "type": "presence",
        "data": {"userId": "walker", "online": True},
    }
    second = await connect(issuer.token("walker"))
    await second.disconnect()
    # A marker announced now goes out after whatever the close announced.
    marker = {"type": "presence", "data": {"userId": "marker", "online": True}}
    delivery.announce_presence("marker", [room_id], online=True)
    assert await watcher.receive_json_from(timeout=5) == marker
    while (frame := await first.receive_json_from(timeout=5)) != marker:  # the watcher's arrival may come first
        assert frame["data"]["userId"] != "walker"  # never about oneself
    await first.disconnect()
    assert await watcher.receive_json_from(timeout=5) == {
        "type": "presence",
        "data": {"userId": "walker", "online": False},
    }


async def test_a_connect_storm_costs_a_few_events_per_room_not_one_per_connect(connect, issuer, monkeypatch):
    users = [f"storm-{n}" for n in range(20)]
    await new_room("storm-watch", *users)
    watcher = await connect(issuer.token("storm-watch"))
    published = []
    publish = delivery.to_room

    async def counted(room_id: str, event: dict) -> None:
        published.append(event["type"])
        await publish(room_id, event)

    monkeypatch.setattr(delivery, "to_room", counted)
    await asyncio.gather(*(connect(issuer.token(user)) for user in users))
    online = set()
    while online != set(users):
        frame = await watcher.receive_json_from(timeout=5)
        assert frame["type"] == "presence" and frame["data"]["online"], frame
        online.add(frame["data"]["userId"])
    assert 1 <= len(published) <= 5


async def test_changes_announced_while_a_round_is_sent_go_out_in_the_next(monkeypatch, settings):
    settings.PRESENCE_WINDOW_MS = 10
    sent, sending, arrived = [], asyncio.Event(), asyncio.Event()

    async def slow(room_id: str, event: dict) -> None:
        sending.set()
        await arrived.wait()
        sent.append([json.loads(frame["text"])["data"] for frame in event["frames"]])

    monkeypatch.setattr(delivery, "to_room", slow)
    announcer = delivery.PresenceAnnouncer()
    announcer.announce("early", ["room"], online=True)
    await sending.wait()
    announcer.announce("late", ["room"], online=False)  # while the first round is on its way
    arrived.set()
    await eventually(lambda: len(sent) == 2, timeout=2)
    assert sent == [[{"userId": "early", "online": True}], [{"userId": "late", "online": False}]]


async def test_strangers_hear_nothing(connect, issuer):
    await new_room("someone", "else")
    stranger = await connect(issuer.token("stranger"))
    mate = await connect(issuer.token("else"))
    await connect(issuer.token("someone"))
    while (await mate.receive_json_from(timeout=5))["data"] != {"userId": "someone", "online": True}:
        pass
    # The room's presence frame has reached this process's sockets: any for
    # the stranger would come before the answer to a ping sent now.
    await stranger.send_json_to({"action": "ping"})
    assert await stranger.receive_json_from(timeout=5) == {"type": "pong"}


async def test_reaping_a_users_last_connection_announces_them_offline(connect, issuer):
    await new_room("observer", "vanished")
    observer = await connect(issuer.token("observer"))
    await connect(issuer.token("vanished"))
    assert (await observer.receive_json_from(timeout=5))["data"] == {"userId": "vanished", "online": True}
    [item] = connection_items("vanished")
    expired = domain.Connection(item["connectionId"], "vanished", item["connectedAt"], int(time.time()) - 1)
    await storage.put_connection(expired)
    await storage.set_online(expired, now=int(time.time()))
    await services.reap_expired_connections()
    assert await observer.receive_json_from(timeout=5) == {
        "type": "presence",
        "data": {"userId": "vanished", "online": False},
    }
