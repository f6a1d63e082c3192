"""The process's hub (chat.hub) on the in-memory channel layer: a slow join
of one group holds up neither frames nor other groups' joins."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from channels.layers import channel_layers

from chat.hub import Hub, hub
from tests.helpers import eventually

pytestmark = pytest.mark.unit


class Recorder:
    """A hub member that keeps what it is given."""

    def __init__(self) -> None:
        self.channel_name = f"local.{uuid.uuid4().hex}"
        self.frames: list[dict] = []
        self.events: list[dict] = []

    async def deliver_frame(self, event: dict) -> None:
        self.frames.append(event)

    def post(self, event: dict) -> None:
        self.events.append(event)


class SlowJoins:
    """The channel layer, whose group_add of one group waits for release."""

    def __init__(self, layer, slow_group: str) -> None:
        self.layer, self.slow_group = layer, slow_group
        self.held, self.release = asyncio.Event(), asyncio.Event()
        self.adds: list[str] = []

    async def group_add(self, group: str, channel: str) -> None:
        self.adds.append(group)
        if group == self.slow_group:
            self.held.set()
            await self.release.wait()
        await self.layer.group_add(group, channel)

    def __getattr__(self, name: str):
        return getattr(self.layer, name)


def group(kind: str) -> str:
    return f"{kind}.hubtest-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def slow_hub(monkeypatch, settings) -> AsyncIterator[tuple[Hub, SlowJoins]]:
    """This loop's hub, on an in-memory layer whose joins of one group are
    held."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    process_hub = hub()
    layer = SlowJoins(process_hub.layer, group("room"))
    monkeypatch.setattr(process_hub, "layer", layer)
    yield process_hub, layer
    layer.release.set()
    await process_hub.close()


async def send(process_hub: Hub, to: str, event: dict) -> None:
    await process_hub.layer.group_send(to, {**event, "group": to})


async def test_frames_and_leaves_go_on_while_a_group_is_being_joined(slow_hub):
    process_hub, layer = slow_hub
    room, user = group("room"), group("user")
    staying, leaving = Recorder(), Recorder()
    for member, to in ((staying, room), (leaving, room), (leaving, user)):
        await process_hub.subscribe(member, to)
    joining = asyncio.create_task(process_hub.subscribe(Recorder(), layer.slow_group))
    await asyncio.wait_for(layer.held.wait(), 5)

    await send(process_hub, user, {"type": "chat.room_left", "room_id": "r", "leaves": room})
    await send(process_hub, room, {"type": "chat.frame", "text": "after the leave"})
    await eventually(lambda: staying.frames)
    assert [frame["text"] for frame in staying.frames] == ["after the leave"]
    assert leaving.frames == [] and [event["type"] for event in leaving.events] == ["chat.room_left"]
    assert not joining.done()


async def test_joining_one_group_does_not_wait_for_another(slow_hub):
    process_hub, layer = slow_hub
    joining = asyncio.create_task(process_hub.subscribe(Recorder(), layer.slow_group))
    await asyncio.wait_for(layer.held.wait(), 5)
    other = group("room")
    await asyncio.wait_for(process_hub.subscribe(Recorder(), other), 2)
    assert other in process_hub.members and not joining.done()


async def test_subscribers_to_a_group_being_joined_share_its_one_group_add(slow_hub):
    process_hub, layer = slow_hub
    members = [Recorder() for _ in range(3)]
    joins = [asyncio.create_task(process_hub.subscribe(member, layer.slow_group)) for member in members]
    await asyncio.wait_for(layer.held.wait(), 5)
    layer.release.set()
    await asyncio.wait_for(asyncio.gather(*joins), 5)
    assert layer.adds.count(layer.slow_group) == 1
    assert process_hub.members[layer.slow_group] == set(members)
    await send(process_hub, layer.slow_group, {"type": "chat.frame", "text": "to all three"})
    await eventually(lambda: all(member.frames for member in members))
