"""History, catch-up, idempotent sends, read state and typing over the socket."""

import asyncio
import time

import pytest

from chat import keys, services, storage
from chat.domain import Identity, iso_from_ms
from chat.errors import StorageUnavailable
from chat.storage import dynamo
from tests.helpers import (
    approve,
    before_marker,
    connected_pair,
    eventually,
    new_room,
    next_frame,
    quiet,
    raw_items,
    send_message,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def get_messages(socket, room_id: str, **params) -> dict:
    await socket.send_json_to({"action": "getMessages", "chatRoomId": room_id, **params})
    reply = await next_frame(socket)
    assert reply["type"] == "messages", reply
    return reply["data"]


@pytest.fixture
def call_activity():
    """call_activity(activity_id, user): join it as user (nickname = user)."""

    async def join(activity_id: str, user: str) -> None:
        await services.join_activity(Identity(user_id=user, nickname=user), activity_id)

    return join


@pytest.fixture
async def pair(connect, issuer):
    """Two approved members of a direct room, connected: (a, b, room_id)."""
    return await connected_pair(connect, issuer, "pair-a", "pair-b")


async def test_client_offline_during_20_messages_catches_up_exactly(connect, issuer, pair):
    a, b, room_id = pair
    seen = await send_message(b, room_id, "before")
    await next_frame(a)
    await b.disconnect()
    sent = [await send_message(a, room_id, f"missed {n}") for n in range(20)]
    await before_marker(a)  # the hub has handed out the last one: b, back, gets none live

    b = await connect(issuer.token("pair-b"))
    first = await get_messages(b, room_id, afterSeq=seen["seq"], limit=15)
    rest = await get_messages(b, room_id, afterSeq=first["messages"][-1]["seq"], limit=15)
    got = first["messages"] + rest["messages"]
    assert (first["hasMore"], rest["hasMore"]) == (True, False)
    assert [m["messageId"] for m in got] == [m["messageId"] for m in sent]
    assert [m["seq"] for m in got] == list(range(seen["seq"] + 1, seen["seq"] + 21))


async def test_retried_send_is_stored_and_delivered_once(pair):
    a, b, room_id = pair
    frame = {"action": "sendMessage", "chatRoomId": room_id, "content": "once", "clientMessageId": "retry-1"}
    await a.send_json_to(frame)
    first = await next_frame(a)
    first_ack = (await next_frame(a))["data"]
    await a.send_json_to(frame)
    second_ack = await next_frame(a)
    assert second_ack["type"] == "ack"
    assert (second_ack["data"]["messageId"], second_ack["data"]["seq"]) == (first_ack["messageId"], first_ack["seq"])
    assert second_ack["data"]["duplicate"] is True
    assert await next_frame(b) == first
    assert await quiet(b)
    stored = (await storage.messages_page(room_id))[0]
    assert [m.content for m in stored] == ["once"]


async def test_concurrent_duplicates_from_two_tabs_store_one_message(connect, issuer, pair):
    a, _, room_id = pair
    a2 = await connect(issuer.token("pair-a"))
    frame = {"action": "sendMessage", "chatRoomId": room_id, "content": "race", "clientMessageId": "race-1"}
    await asyncio.gather(a.send_json_to(frame), a2.send_json_to(frame))
    acks = []
    for socket in (a, a2):
        while True:
            received = await next_frame(socket)
            if received["type"] == "ack":
                acks.append(received["data"])
                break
    assert acks[0]["messageId"] == acks[1]["messageId"]
    assert len((await storage.messages_page(room_id))[0]) == 1


async def acks_of(socket, count: int) -> list[dict]:
    """The next count acks the socket receives (messages read past)."""
    acks: list[dict] = []
    while len(acks) < count:
        if (frame := await next_frame(socket))["type"] == "ack":
            acks.append(frame["data"])
    return acks


async def test_client_message_ids_are_scoped_to_user_and_room(connect, issuer, pair):
    a, b, room_id = pair
    other_room = await new_room("pair-a", "pair-b", "pair-c")
    for socket, room in ((a, room_id), (b, room_id), (a, other_room)):
        await socket.send_json_to(
            {"action": "sendMessage", "chatRoomId": room, "content": "x", "clientMessageId": "same"}
        )
    acks = await acks_of(a, 2) + await acks_of(b, 1)
    assert len({ack["messageId"] for ack in acks}) == 3
    assert len((await storage.messages_page(room_id))[0]) == 2
    assert len((await storage.messages_page(other_room))[0]) == 1


async def test_send_that_failed_can_be_retried_with_the_same_id(settings, pair, break_storage):
    a, _, room_id = pair
    frame = {"action": "sendMessage", "chatRoomId": room_id, "content": "later", "clientMessageId": "flaky-1"}
    endpoint = settings.DYNAMODB_ENDPOINT_URL
    await storage.reserve_client_message(
        "pair-a", room_id, "flaky-1", message_id="dead-send", lease_ms=-1, ttl=int(time.time()) + 60
    )  # a claim left behind by a send that died before storing anything
    break_storage()
    await a.send_json_to(frame)
    assert (await next_frame(a))["data"]["code"] == "STORAGE_UNAVAILABLE"
    settings.DYNAMODB_ENDPOINT_URL = endpoint
    storage.reset_client()
    await a.send_json_to(frame)
    assert (await next_frame(a))["data"]["content"] == "later"
    assert (await next_frame(a))["type"] == "ack"
    assert [m.content for m in (await storage.messages_page(room_id))[0]] == ["later"]


async def test_a_message_that_cannot_be_stored_gives_back_the_room_preview(monkeypatch, pair):
    a, b, room_id = pair
    await send_message(a, room_id, "kept")
    await next_frame(b)

    def put_fails(message):
        raise StorageUnavailable()

    monkeypatch.setattr(storage, "put_message", put_fails)  # the put fails after the seq is taken
    await a.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "lost", "clientMessageId": "x"})
    assert (await next_frame(a))["data"]["code"] == "STORAGE_UNAVAILABLE"
    assert await quiet(b)

    def preview() -> tuple[str | None, int]:
        [metadata] = [item for item in raw_items(f"CHATROOM#{room_id}") if item["SK"] == "METADATA"]
        return metadata.get("lastMessage"), metadata["lastSeq"]

    assert await eventually(lambda: preview() == ("kept", 2))  # put back off the error's path
    summary = (await storage.room_summaries([room_id]))[room_id]
    assert (summary.last_message, summary.room.last_seq) == ("kept", 2)


async def test_mark_read_moves_forward_only_and_tells_members(pair):
    a, b, room_id = pair
    for n in range(3):
        await send_message(a, room_id, f"r{n}")
        await next_frame(b)
    await b.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 2})
    event = {"type": "read", "data": {"chatRoomId": room_id, "userId": "pair-b", "seq": 2}}
    assert await next_frame(a) == event
    assert await next_frame(b) == event

    await b.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 1})
    assert await next_frame(b) == event  # unchanged, told to the requester only
    assert await quiet(a)

    await b.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 999})
    assert (await next_frame(a))["data"]["seq"] == 3  # capped at the room's last seq
    assert (await next_frame(b))["data"]["seq"] == 3
    history = await get_messages(b, room_id)
    assert [m["readBy"] for m in history["messages"]] == [["pair-a", "pair-b"]] * 3


async def test_mark_read_is_validated_and_authorised(connect, issuer, pair):
    a, _, room_id = pair
    for bad in ({"chatRoomId": room_id}, {"chatRoomId": room_id, "seq": -1}, {"chatRoomId": room_id, "seq": True}):
        await a.send_json_to({"action": "markRead", **bad})
        assert (await next_frame(a))["data"]["code"] == "INVALID_REQUEST"
    await approve("outsider-r")
    outsider = await connect(issuer.token("outsider-r"))
    await outsider.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 1})
    assert (await next_frame(outsider))["data"]["code"] == "NOT_A_PARTICIPANT"


async def test_system_messages_count_as_unread_until_read_past(pair):
    _, b, room_id = pair
    await services.send_system_message(room_id=room_id, content="welcome")
    assert (await next_frame(b))["data"]["messageType"] == "system"
    [listing] = [r for r in await services.list_rooms("pair-b") if r.summary.room.room_id == room_id]
    assert listing.unread_count == 1
    await b.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 1})
    assert (await next_frame(b))["type"] == "read"
    [listing] = [r for r in await services.list_rooms("pair-b") if r.summary.room.room_id == room_id]
    assert listing.unread_count == 0


async def test_get_messages_checks_its_fields_and_membership(connect, issuer, pair):
    a, _, room_id = pair
    for bad in ({"limit": 0}, {"limit": 101}, {"afterSeq": "1"}, {"afterSeq": 1, "beforeSeq": 3}):
        await a.send_json_to({"action": "getMessages", "chatRoomId": room_id, **bad})
        assert (await next_frame(a))["data"]["code"] == "INVALID_REQUEST"
    outsider = await connect(issuer.token("outsider-g"))
    await outsider.send_json_to({"action": "getMessages", "chatRoomId": room_id})
    assert (await next_frame(outsider))["data"]["code"] == "NOT_A_PARTICIPANT"


async def test_messages_in_the_reference_layout_read_back_in_key_order(pair):
    a, _, room_id = pair
    for timestamp, message_id, text in ((1700000001000, "legacy-2", "second"), (1700000000000, "legacy-1", "first")):
        await dynamo.put(
            {
                **keys.message(room_id, timestamp, message_id),
                "messageId": message_id,
                "chatRoomId": room_id,
                "senderId": "pair-b",
                "content": text,
                "messageType": "user",
                "readBy": ["pair-b"],
                "createdAt": iso_from_ms(timestamp),
                "timestamp": timestamp,
            }
        )
    new = await send_message(a, room_id, "third")
    history = await get_messages(a, room_id)
    assert [(m["content"], m["seq"], m["readBy"]) for m in history["messages"]] == [
        ("first", None, ["pair-b"]),
        ("second", None, ["pair-b"]),
        ("third", new["seq"], ["pair-a"]),
    ]
    older = await get_messages(a, room_id, beforeSeq=new["seq"])
    assert [m["content"] for m in older["messages"]] == ["first", "second"]


async def test_typing_reaches_other_members_at_most_every_two_seconds(connect, issuer, pair):
    a, b, room_id = pair
    a2 = await connect(issuer.token("pair-a"))
    await a.send_json_to({"action": "typing", "chatRoomId": room_id})
    assert await next_frame(b) == {"type": "typing", "data": {"chatRoomId": room_id, "userId": "pair-a"}}
    await a.send_json_to({"action": "typing", "chatRoomId": room_id})
    await a.send_json_to({"action": "ping"})
    assert await next_frame(a) == {"type": "pong"}  # the second typing frame was handled
    assert await quiet(b)
    assert await quiet(a2) and await quiet(a)
    outsider = await connect(issuer.token("outsider-t"))
    await outsider.send_json_to({"action": "typing", "chatRoomId": room_id})
    assert (await next_frame(outsider))["data"]["code"] == "NOT_A_PARTICIPANT"


async def test_send_refused_before_storing_frees_its_client_message_id(call_activity, connect, issuer):
    await approve("joiner")
    await call_activity("walk-1", "host")
    socket = await connect(issuer.token("joiner"))
    room_id = (await services.list_rooms("host"))[0].summary.room.room_id
    frame = {"action": "sendMessage", "chatRoomId": room_id, "content": "hello", "clientMessageId": "first-try"}
    await socket.send_json_to(frame)
    assert (await next_frame(socket))["data"]["code"] == "NOT_A_PARTICIPANT"
    await call_activity("walk-1", "joiner")
    assert (await next_frame(socket))["type"] == "room"
    await socket.send_json_to(frame)
    assert (await next_frame(socket))["data"]["content"] == "hello"  # not held back by the first attempt
    assert (await next_frame(socket))["data"]["clientMessageId"] == "first-try"


async def test_mark_read_of_nothing_reports_the_current_watermark(pair):
    a, b, room_id = pair
    await send_message(a, room_id, "one")
    await next_frame(b)
    await b.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 1})
    assert (await next_frame(b))["data"]["seq"] == 1
    await b.send_json_to({"action": "markRead", "chatRoomId": room_id, "seq": 0})
    assert await next_frame(b) == {"type": "read", "data": {"chatRoomId": room_id, "userId": "pair-b", "seq": 1}}
