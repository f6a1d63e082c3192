"""The socket protocol as a client sees it: sendMessage, errors, verification."""

import asyncio
import json
import time

import pytest
from django.db.backends.utils import CursorWrapper

from chat import blocking, domain, storage
from chat.models import Profile
from tests.helpers import approve, connection_items, new_room, next_frame, quiet

pytestmark = pytest.mark.django_db(transaction=True)


class CountingExecutor:
    """The blocking pool, with every hop to it recorded."""

    def __init__(self, pool, hops: list) -> None:
        self.pool, self.hops = pool, hops

    def submit(self, fn, *args, **kwargs):
        self.hops.append(fn)
        return self.pool.submit(fn, *args, **kwargs)


async def ping_pong(socket) -> None:
    """The connection is still open and serving frames."""
    await socket.send_json_to({"action": "ping"})
    assert await next_frame(socket) == {"type": "pong"}


async def expect_error(socket, frame, code: str, action=None) -> dict:
    if isinstance(frame, (str, bytes)):
        await socket.send_to(**({"text_data": frame} if isinstance(frame, str) else {"bytes_data": frame}))
    else:
        await socket.send_json_to(frame)
    reply = await next_frame(socket)
    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == code
    assert reply["data"]["action"] == action
    assert reply["data"]["message"]
    await ping_pong(socket)
    return reply


@pytest.fixture
async def member(connect, issuer):
    """An approved user in a room with a second user, connected."""
    await approve("sender")
    room_id = await new_room("sender", "other")
    socket = await connect(issuer.token("sender"))
    return socket, room_id


async def test_message_reaches_every_connection_of_every_participant(connect, issuer, member):
    sender, room_id = member
    sender_tab = await connect(issuer.token("sender"))
    other_phone = await connect(issuer.token("other"))
    other_laptop = await connect(issuer.token("other"))
    outsider = await connect(issuer.token("outsider"))

    await sender.send_json_to(
        {"action": "sendMessage", "chatRoomId": room_id, "content": "hi all", "clientMessageId": "c-1"}
    )
    echo = await next_frame(sender)
    ack = await next_frame(sender)
    assert echo["type"] == "message"
    assert ack == {
        "type": "ack",
        "data": {
            "messageId": echo["data"]["messageId"],
            "clientMessageId": "c-1",
            "chatRoomId": room_id,
            "seq": echo["data"]["seq"],
            "timestamp": echo["data"]["timestamp"],
        },
    }
    for socket in (sender_tab, other_phone, other_laptop):
        assert await next_frame(socket) == echo
    data = echo["data"]
    assert (data["chatRoomId"], data["senderId"], data["content"], data["messageType"]) == (
        room_id,
        "sender",
        "hi all",
        "user",
    )
    assert data["createdAt"] == domain.iso_from_ms(data["timestamp"])
    assert await quiet(outsider)
    assert await quiet(sender)


async def test_sequence_numbers_increase_per_room(member):
    sender, room_id = member
    seqs = []
    for n in range(3):
        await sender.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": f"m{n}"})
        seqs.append((await next_frame(sender))["data"]["seq"])
        await next_frame(sender)
    assert seqs == [1, 2, 3]


async def test_content_of_exactly_5000_utf16_units_is_accepted(member):
    sender, room_id = member
    content = "a" * 4998 + "😀"  # the emoji is two UTF-16 code units
    await sender.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": content})
    assert (await next_frame(sender))["data"]["content"] == content


async def test_content_over_5000_utf16_units_is_too_long(member):
    sender, room_id = member
    content = "😀" * 2501  # 2501 characters for Python, 5002 for a browser
    await expect_error(
        sender, {"action": "sendMessage", "chatRoomId": room_id, "content": content}, "MESSAGE_TOO_LONG", "sendMessage"
    )
    assert (await storage.messages_page(room_id, limit=100))[0] == []


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('{"action": "ping"', id="truncated"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('"ping"', id="string"),
        pytest.param("[" * 100000 + "]" * 100000, id="deeply-nested"),
        pytest.param(b'{"action": "ping"}', id="binary-frame"),
    ],
)
async def test_frames_that_are_not_json_objects_get_invalid_json(member, frame):
    sender, _ = member
    await expect_error(sender, frame, "INVALID_JSON")


async def test_unknown_action_gets_unknown_action(member):
    sender, _ = member
    await expect_error(sender, {"action": "deleteEverything"}, "UNKNOWN_ACTION", "deleteEverything")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"content": "hi"}, id="missing-room"),
        pytest.param({"chatRoomId": "ROOM"}, id="missing-content"),
        pytest.param({"chatRoomId": "ROOM", "content": 42}, id="content-not-string"),
        pytest.param({"chatRoomId": "ROOM", "content": ""}, id="empty-content"),
        pytest.param({"chatRoomId": "ROOM", "content": " \n\t "}, id="whitespace-content"),
        pytest.param({"chatRoomId": "ROOM", "content": "bad \ud800 surrogate"}, id="unpaired-surrogate"),
        pytest.param({"chatRoomId": "a#b", "content": "hi"}, id="room-id-with-hash"),
        pytest.param({"chatRoomId": "x" * 129, "content": "hi"}, id="room-id-too-long"),
        pytest.param({"chatRoomId": "", "content": "hi"}, id="room-id-empty"),
        pytest.param({"chatRoomId": 7, "content": "hi"}, id="room-id-number"),
        pytest.param({"chatRoomId": "ROOM", "content": "hi", "clientMessageId": "x" * 65}, id="client-id-too-long"),
        pytest.param({"chatRoomId": "ROOM", "content": "hi", "clientMessageId": ""}, id="client-id-empty"),
        pytest.param({"chatRoomId": "ROOM", "content": "hi", "clientMessageId": 5}, id="client-id-number"),
    ],
)
async def test_malformed_send_gets_invalid_request_and_stores_nothing(member, fields):
    sender, room_id = member
    frame = {"action": "sendMessage", **{k: (room_id if v == "ROOM" else v) for k, v in fields.items()}}
    await expect_error(sender, frame, "INVALID_REQUEST", "sendMessage")
    assert (await storage.messages_page(room_id, limit=100))[0] == []


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param({"action": "markRead", "chatRoomId": "ROOM", "seq": 10**39}, id="markRead-40-digits"),
        pytest.param({"action": "markRead", "chatRoomId": "ROOM", "seq": 2**53}, id="markRead-2**53"),
        pytest.param({"action": "getMessages", "chatRoomId": "ROOM", "afterSeq": 10**39}, id="afterSeq-40-digits"),
        pytest.param({"action": "getMessages", "chatRoomId": "ROOM", "beforeSeq": 2**53}, id="beforeSeq-2**53"),
    ],
)
async def test_numbers_beyond_what_javascript_holds_get_invalid_request(member, frame):
    sender, room_id = member
    frame = {k: (room_id if v == "ROOM" else v) for k, v in frame.items()}
    await expect_error(sender, frame, "INVALID_REQUEST", frame["action"])


@pytest.mark.parametrize("content", ["\x00", "\x00\x01\x7f", "\u200b\ufeff"], ids=["nul", "controls", "zero-width"])
async def test_invisible_content_is_empty_and_stores_nothing(member, content):
    sender, room_id = member
    reply = await expect_error(
        sender, {"action": "sendMessage", "chatRoomId": room_id, "content": content}, "INVALID_REQUEST", "sendMessage"
    )
    assert reply["data"]["message"] == "content must not be empty"
    assert (await storage.messages_page(room_id, limit=100))[0] == []


@pytest.mark.parametrize(
    "action", ["\ud800", "bad \udfff", "x" * 65], ids=["lone-surrogate", "embedded-surrogate", "long"]
)
async def test_unknown_action_that_cannot_be_echoed_gets_null_action(member, action):
    sender, _ = member
    await sender.send_json_to({"action": action})
    text = await sender.receive_from(timeout=5)
    text.encode("utf-8")  # what daphne must send
    assert json.loads(text) == {
        "type": "error",
        "data": {"code": "UNKNOWN_ACTION", "message": "Unknown action", "action": None},
    }


async def test_action_that_is_not_a_string_gets_invalid_request(member):
    sender, _ = member
    await expect_error(sender, {"action": ["ping"]}, "INVALID_REQUEST")
    await expect_error(sender, {"content": "no action"}, "INVALID_REQUEST")


async def test_non_participant_gets_not_a_participant(connect, issuer, member):
    _, room_id = member
    await approve("outsider")
    outsider = await connect(issuer.token("outsider"))
    await expect_error(
        outsider,
        {"action": "sendMessage", "chatRoomId": room_id, "content": "let me in"},
        "NOT_A_PARTICIPANT",
        "sendMessage",
    )
    assert (await storage.messages_page(room_id, limit=100))[0] == []


async def test_missing_room_looks_like_not_a_participant(member):
    sender, _ = member
    await expect_error(
        sender,
        {"action": "sendMessage", "chatRoomId": "no-such-room", "content": "hello?"},
        "NOT_A_PARTICIPANT",
        "sendMessage",
    )


async def test_storage_outage_gets_storage_unavailable_and_socket_survives(member, break_storage):
    sender, room_id = member
    break_storage()
    await expect_error(
        sender,
        {"action": "sendMessage", "chatRoomId": room_id, "content": "lost?"},
        "STORAGE_UNAVAILABLE",
        "sendMessage",
    )


async def test_unverified_user_gets_verification_required_until_approved(connect, issuer):
    room_id = await new_room("newbie", "friend")
    newbie = await connect(issuer.token("newbie"))
    friend = await connect(issuer.token("friend"))
    send = {"action": "sendMessage", "chatRoomId": room_id, "content": "first!"}

    await newbie.send_json_to(send)
    refusal = await next_frame(newbie)
    assert refusal["type"] == "VERIFICATION_REQUIRED" and refusal["message"]
    assert (await storage.messages_page(room_id, limit=100))[0] == []
    assert await quiet(friend)

    await approve("newbie")
    assert await next_frame(newbie) == {"type": "verification", "data": {"status": "approved"}}
    await newbie.send_json_to(send)
    assert (await next_frame(newbie))["data"]["content"] == "first!"
    assert (await next_frame(friend))["data"]["content"] == "first!"


async def test_rejection_applies_to_open_connections_at_once(member):
    sender, room_id = member
    await approve("sender", "rejected")
    assert await next_frame(sender) == {"type": "verification", "data": {"status": "rejected"}}
    await sender.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "still here"})
    assert (await next_frame(sender))["type"] == "VERIFICATION_REQUIRED"


async def test_connection_registry_follows_the_socket(connect, issuer):
    socket = await connect(issuer.token("registered"))
    await ping_pong(socket)
    assert len(await storage.user_connection_ids("registered", now=int(time.time()))) == 1
    await socket.disconnect()
    assert await storage.user_connection_ids("registered", now=int(time.time())) == []


async def test_room_created_while_connected_is_delivered_at_once(connect, issuer):
    await approve("early")
    early = await connect(issuer.token("early"))
    late = await connect(issuer.token("late"))
    room_id = await new_room("early", "late")
    for socket in (early, late):
        announced = await next_frame(socket)
        assert announced["type"] == "room"
        assert (announced["data"]["chatRoomId"], announced["data"]["participantIds"]) == (room_id, ["early", "late"])
    await early.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "new room"})
    assert (await next_frame(late))["data"]["content"] == "new room"


async def test_first_connection_creates_a_pending_profile_with_the_token_nickname(connect, issuer):
    await connect(issuer.token("first-timer", nickname="Newcomer"))
    profile = await Profile.objects.aget(user_id="first-timer")
    assert (profile.status, profile.nickname) == ("pending", "Newcomer")


async def test_a_known_user_connects_without_a_thread_hop_or_an_orm_query(connect, issuer, monkeypatch):
    await approve("regular")
    await (await connect(issuer.token("regular", nickname="Regular"))).disconnect()  # first sight
    hops, queries = [], []
    pool = blocking._executor()
    monkeypatch.setattr(blocking, "_executor", lambda: CountingExecutor(pool, hops))
    monkeypatch.setattr(CursorWrapper, "execute", lambda self, sql, params=None: queries.append(sql))
    socket = await connect(issuer.token("regular", nickname="Regular"))
    await socket.send_json_to({"action": "sendMessage", "chatRoomId": "nowhere", "content": "verified?"})
    assert (await next_frame(socket))["data"]["code"] == "NOT_A_PARTICIPANT"  # past the verification check
    assert (hops, queries) == ([], [])


async def test_a_new_nickname_reaches_the_admins_profile(connect, issuer):
    await (await connect(issuer.token("renamed", nickname="Before"))).disconnect()
    await connect(issuer.token("renamed", nickname="After"))
    assert (await Profile.objects.aget(user_id="renamed")).nickname == "After"
    assert (await storage.get_profile("renamed")).nickname == "After"


async def test_frame_flood_gets_rate_limited_and_socket_survives(connect, issuer, settings):
    settings.SOCKET_RATE, settings.SOCKET_BURST = 1, 3
    socket = await connect(issuer.token("flooder"), ready=False)
    for _ in range(5):
        await socket.send_json_to({"action": "ping"})
    replies = [await next_frame(socket) for _ in range(5)]
    assert [r["type"] for r in replies[:3]] == ["pong"] * 3
    assert [r["data"]["code"] for r in replies[3:]] == ["RATE_LIMITED"] * 2
    assert all(isinstance(r["data"]["retryAfterMs"], int) and r["data"]["retryAfterMs"] > 0 for r in replies[3:])


async def test_a_burst_of_150_handshakes_all_succeed(connect, issuer):
    await asyncio.gather(*(connect(issuer.token(f"burst-{n}")) for n in range(150)))  # each answers a ping
    assert [len(connection_items(f"burst-{n}")) for n in range(150)] == [1] * 150


async def test_rejection_whose_event_was_lost_applies_within_the_recheck_time(member, settings):
    sender, room_id = member
    settings.VERIFICATION_RECHECK_SECONDS = 0
    await storage.set_verification_status("sender", "rejected")  # recorded, but its event was lost
    await sender.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "still?"})
    assert (await next_frame(sender))["type"] == "VERIFICATION_REQUIRED"


async def test_an_unverified_user_reaches_nobody_over_the_socket(connect, issuer):
    await approve("friend-u")
    room_id = await new_room("pending-u", "friend-u")
    pending = await connect(issuer.token("pending-u"))
    friend = await connect(issuer.token("friend-u"))
    await friend.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "hi"})
    assert (await next_frame(pending))["data"]["content"] == "hi"
    for frame in ({"action": "typing", "chatRoomId": room_id}, {"action": "markRead", "chatRoomId": room_id, "seq": 1}):
        await pending.send_json_to(frame)
        assert (await next_frame(pending))["type"] == "VERIFICATION_REQUIRED"
    await pending.send_json_to({"action": "getMessages", "chatRoomId": room_id})
    assert [m["content"] for m in (await next_frame(pending))["data"]["messages"]] == ["hi"]
    await next_frame(friend)  # its own message
    await next_frame(friend)  # and the ack
    assert await quiet(friend)
