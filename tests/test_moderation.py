"""Staff's moderation as users notice it: a suspended user's sockets close
with 4430 and stay refused, their HTTP calls get 403, until it is lifted; a
removed message vanishes from the room's sockets and stays in history as a
tombstone under its seq, out of the room's previews."""

import pytest

from chat import services, storage
from chat.blocking import run_orm
from chat.consumers import CLOSE_SUSPENDED
from chat.errors import InvalidRequest, MessageNotFound
from chat.models import Decision
from tests.helpers import approve, connected_pair, eventually, new_room, next_frame, raw_items, send_message
from tests.openapi import conforms

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_SUSPENDED = {"type": "websocket.close", "code": CLOSE_SUSPENDED}


def rows(**lookup: str) -> list[tuple]:
    """History rows matching lookup, newest first, as (kind, user, reason,
    decider, room, seq, message id)."""
    return [
        (row.kind, row.profile and row.profile.user_id, row.reason, row.decider, row.room_id, row.seq, row.message_id)
        for row in Decision.objects.filter(**lookup).select_related("profile", "decided_by")
    ]


async def suspend(user_id: str, *, suspended: bool = True, reason: str = "") -> None:
    await run_orm(services.set_suspension, user_ids=[user_id], suspended=suspended, reason=reason)


async def test_suspension_closes_open_sockets_refuses_connects_and_calls_until_lifted(connect, issuer, call):
    await approve("sus-a")
    phone, laptop = await connect(issuer.token("sus-a")), await connect(issuer.token("sus-a"))

    await suspend("sus-a", reason="spam")

    assert await phone.receive_output(timeout=5) == CLOSED_SUSPENDED
    assert await laptop.receive_output(timeout=5) == CLOSED_SUSPENDED
    refused = await connect(issuer.token("sus-a"), ready=False)
    assert await refused.receive_output(timeout=5) == CLOSED_SUSPENDED
    response = await call("get", "/chat/rooms", "sus-a")
    assert response.status_code == 403
    assert conforms(response, "/chat/rooms")["error"]["code"] == "USER_SUSPENDED"
    assert await eventually(lambda: not any(item["SK"].startswith("CONNECTION#") for item in raw_items("USER#sus-a")))

    await suspend("sus-a", suspended=False)

    socket = await connect(issuer.token("sus-a"))  # ready: it answered a ping
    await socket.send_json_to({"action": "ping"})
    assert await next_frame(socket) == {"type": "pong"}
    assert (await call("get", "/chat/rooms", "sus-a")).status_code == 200
    history = [row[:4] for row in await run_orm(rows, profile__user_id="sus-a", kind__startswith="suspension")]
    assert history == [("suspension_lifted", "sus-a", "", "command"), ("suspension", "sus-a", "spam", "command")]


async def test_a_socket_that_missed_its_suspension_is_closed_at_its_next_send(connect, issuer, settings):
    await approve("sus-b")
    room_id = await new_room("sus-b", "sus-c")
    socket = await connect(issuer.token("sus-b"))
    # The item says suspended but no event was sent: as if it was lost.
    await storage.set_suspended("sus-b", True)
    settings.VERIFICATION_RECHECK_SECONDS = 0
    await socket.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": "still here?"})
    assert await socket.receive_output(timeout=5) == CLOSED_SUSPENDED
    assert (await storage.messages_page(room_id))[0] == []


async def test_a_rejection_reaches_the_users_sockets_with_its_reason(connect, issuer):
    socket = await connect(issuer.token("rej-a"))
    reason = "The name on the document does not match"
    await run_orm(services.set_verification, user_ids=["rej-a"], status="rejected", reason=reason)
    assert await next_frame(socket) == {"type": "verification", "data": {"status": "rejected", "reason": reason}}
    [row] = await run_orm(rows, profile__user_id="rej-a")
    assert row[:4] == ("verification", "rej-a", reason, "command")


@pytest.fixture
async def chat(connect, issuer):
    """Approved mod-a and mod-b in a direct room, connected: (a, b, room_id)."""
    return await connected_pair(connect, issuer, "mod-a", "mod-b")


async def test_removed_message_vanishes_live_and_stays_a_tombstone_in_history(chat, call):
    a, b, room_id = chat
    first = await send_message(a, room_id, "something awful")
    await next_frame(b)
    second = await send_message(a, room_id, "sorry")
    await next_frame(b)

    await run_orm(services.remove_message, room_id=room_id, seq=first["seq"], reason="abuse")

    removed = {"chatRoomId": room_id, "messageId": first["messageId"], "seq": first["seq"]}
    assert await next_frame(b) == {"type": "messageRemoved", "data": removed}
    assert await next_frame(a) == {"type": "messageRemoved", "data": removed}
    await b.send_json_to({"action": "getMessages", "chatRoomId": room_id})
    page = (await next_frame(b))["data"]["messages"]
    assert [(m["seq"], m["content"], m.get("removed")) for m in page] == [
        (first["seq"], "", True),
        (second["seq"], "sorry", None),
    ]
    assert page[0]["messageId"] == first["messageId"] and page[0]["deletedAt"] >= first["createdAt"]
    body = conforms(await call("get", f"/chat/rooms/{room_id}/messages", "mod-b"), "/chat/rooms/{roomId}/messages")
    assert [(m["content"], m.get("removed")) for m in body["messages"]] == [("", True), ("sorry", None)]
    assert await run_orm(rows, kind="message_removed") == [
        ("message_removed", "mod-a", "abuse", "command", room_id, first["seq"], first["messageId"])
    ]


async def test_removing_the_last_message_takes_it_out_of_the_previews(chat, call):
    a, b, room_id = chat
    last = await send_message(a, room_id, "delete me")
    await next_frame(b)

    await run_orm(services.remove_message, room_id=room_id, seq=last["seq"])

    listings = conforms(await call("get", "/chat/rooms", "mod-b"), "/chat/rooms")["rooms"]
    [listing] = [listing for listing in listings if listing["chatRoomId"] == room_id]
    assert (listing["lastMessage"], listing["lastSeq"]) == (storage.REMOVED_PREVIEW, last["seq"])

    def preview() -> str | None:
        item = next((i for i in raw_items(f"CHATROOM#{room_id}") if i["SK"] == "LASTMESSAGE"), None)
        return item and item["lastMessage"]

    assert await eventually(lambda: preview() == storage.REMOVED_PREVIEW)
    assert "delete me" not in str(raw_items(f"CHATROOM#{room_id}"))


async def test_removing_a_missing_or_removed_message_changes_nothing(chat):
    a, _, room_id = chat
    sent = await send_message(a, room_id, "once")
    await run_orm(services.remove_message, room_id=room_id, seq=sent["seq"])
    with pytest.raises(InvalidRequest, match="removed already"):
        await run_orm(services.remove_message, room_id=room_id, seq=sent["seq"])
    with pytest.raises(MessageNotFound):
        await run_orm(services.remove_message, room_id=room_id, seq=99)
    assert len(await run_orm(rows, kind="message_removed")) == 1
