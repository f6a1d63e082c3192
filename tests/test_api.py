"""The HTTP API, through Django's async test client, checked against the
OpenAPI document."""

import math

import pytest

from chat import api
from tests.helpers import approve, before_marker, new_room, next_frame, quiet, raw_items, send_message
from tests.openapi import conforms

pytestmark = pytest.mark.django_db(transaction=True)


async def test_create_room_adds_caller_dedupes_and_types_by_size(call, connect, issuer):
    invitee = await connect(issuer.token("api-b"))
    response = await call("post", "/chat/rooms", "api-a", {"participantIds": ["api-b", "api-b"], "name": "Pair"})
    room = conforms(response, "/chat/rooms", "post")["room"]
    assert response.status_code == 201
    assert (room["participantIds"], room["type"], room["name"]) == (["api-b", "api-a"], "direct", "Pair")
    assert [item["SK"] for item in raw_items(f"CHATROOM#{room['chatRoomId']}")] == ["METADATA"]
    assert raw_items("USER#api-a")[0]["GSI1PK"] == "USERROOMS#api-a"
    announced = await next_frame(invitee)
    assert announced == {"type": "room", "data": room}

    group = conforms(
        await call("post", "/chat/rooms", "api-a", {"participantIds": ["api-b", "api-c"]}), "/chat/rooms", "post"
    )
    assert (group["room"]["type"], group["room"]["name"]) == ("group", "Group chat")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"participantIds": [f"u{n}" for n in range(50)]}, id="51-with-caller"),
        pytest.param({}, id="missing"),
        pytest.param({"participantIds": "api-b"}, id="not-a-list"),
        pytest.param({"participantIds": ["bad#id"]}, id="bad-id"),
        pytest.param({"participantIds": ["x"], "name": 5}, id="bad-name"),
    ],
)
async def test_create_room_rejects_bad_bodies_with_400(call, body):
    response = await call("post", "/chat/rooms", "api-a", body)
    assert response.status_code == 400
    assert conforms(response, "/chat/rooms", "post")["error"]["code"] == "INVALID_REQUEST"


async def test_body_that_is_not_json_gets_invalid_json(async_client, issuer):
    response = await async_client.post(
        "/chat/rooms",
        data="{nope",
        content_type="application/json",
        headers={"Authorization": f"Bearer {issuer.token('x')}"},
    )
    assert conforms(response, "/chat/rooms", "post")["error"]["code"] == "INVALID_JSON"


async def test_body_over_the_upload_limit_gets_413(async_client, issuer, settings, caplog):
    body = '{"participantIds": ["x"], "name": "' + "a" * (3 * 1024 * 1024) + '"}'
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = await async_client.post(
        "/chat/rooms",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {issuer.token('x')}"},
    )
    assert response.status_code == 413
    assert conforms(response, "/chat/rooms", "post")["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/chat/rooms"),
        ("post", "/chat/rooms"),
        ("get", "/chat/rooms/r1"),
        ("get", "/chat/rooms/r1/messages"),
        ("post", "/chat/rooms/r1/leave"),
        ("post", "/activities/a1/join"),
    ],
)
async def test_every_route_needs_a_valid_token(call, method, path):
    for response in (await call(method, path, None), await call(method, path, "mallory", aud="other-client")):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert response["WWW-Authenticate"].startswith("Bearer")


async def test_non_member_gets_403_on_every_room_route(call):
    room_id = await new_room("owner-1", "owner-2")
    spec_path = {
        "": "/chat/rooms/{roomId}",
        "/messages": "/chat/rooms/{roomId}/messages",
        "/leave": "/chat/rooms/{roomId}/leave",
    }
    for suffix, template in spec_path.items():
        method = "post" if suffix == "/leave" else "get"
        response = await call(method, f"/chat/rooms/{room_id}{suffix}", "intruder")
        assert response.status_code == 403
        assert conforms(response, template, method)["error"]["code"] == "NOT_A_PARTICIPANT"
    listed = conforms(await call("get", "/chat/rooms", "intruder"), "/chat/rooms")
    assert room_id not in [room["chatRoomId"] for room in listed["rooms"]]


async def test_admin_group_may_read_any_room(call):
    room_id = await new_room("owner-1", "owner-2")
    response = await call("get", f"/chat/rooms/{room_id}", "auditor", **{"cognito:groups": ["admin"]})
    assert conforms(response, "/chat/rooms/{roomId}")["room"]["chatRoomId"] == room_id


async def test_room_detail_has_newest_50_messages_oldest_first_with_read_by(call, connect, issuer, settings):
    settings.SOCKET_RATE = settings.SOCKET_BURST = settings.USER_SEND_BURST = 1000  # 55 sends in a burst
    await approve("talker")
    room_id = await new_room("talker", "listener")
    socket = await connect(issuer.token("talker"))
    for n in range(55):
        await send_message(socket, room_id, f"m{n}")
    body = conforms(await call("get", f"/chat/rooms/{room_id}", "listener"), "/chat/rooms/{roomId}")
    assert [m["content"] for m in body["messages"]] == [f"m{n}" for n in range(5, 55)]
    assert [m["seq"] for m in body["messages"]] == list(range(6, 56))
    assert body["hasMore"] is True
    assert all(m["readBy"] == ["talker"] for m in body["messages"])


async def test_message_pages_walk_both_ways(call, connect, issuer):
    await approve("pager")
    room_id = await new_room("pager", "reader")
    socket = await connect(issuer.token("pager"))
    for n in range(1, 8):
        await send_message(socket, room_id, f"p{n}")
    route = "/chat/rooms/{roomId}/messages"

    async def seqs(query: str) -> tuple[list[int], bool]:
        body = conforms(await call("get", f"/chat/rooms/{room_id}/messages?{query}", "reader"), route)
        return [m["seq"] for m in body["messages"]], body["hasMore"]

    assert await seqs("limit=3") == ([5, 6, 7], True)
    assert await seqs("beforeSeq=5&limit=3") == ([2, 3, 4], True)
    assert await seqs("beforeSeq=2&limit=3") == ([1], False)
    assert await seqs("afterSeq=0&limit=3") == ([1, 2, 3], True)
    assert await seqs("afterSeq=3&limit=10") == ([4, 5, 6, 7], False)
    assert await seqs("afterSeq=7") == ([], False)


@pytest.mark.parametrize(
    "query",
    [
        "limit=101",
        "limit=0",
        "afterSeq=-1",
        "afterSeq=x",
        "afterSeq=1&beforeSeq=5",
        f"afterSeq={10**39}",
        f"beforeSeq={2**53}",
        f"limit={10**39}",
        "afterSeq=%EF%BC%91",
    ],
)
async def test_bad_paging_parameters_get_400(call, query):
    room_id = await new_room("pager-2")
    response = await call("get", f"/chat/rooms/{room_id}/messages?{query}", "pager-2")
    assert response.status_code == 400
    assert conforms(response, "/chat/rooms/{roomId}/messages")["error"]["code"] == "INVALID_REQUEST"


async def test_room_list_is_newest_first_with_unread_counts_and_presence(call, connect, issuer):
    await approve("lister")
    quiet_room = await new_room("lister", "friend-1", name="Quiet")
    busy_room = await new_room("lister", "friend-2", "friend-3")
    friend = await connect(issuer.token("friend-2"))
    await approve("friend-2")
    for n in range(3):
        await send_message(friend, busy_room, f"b{n}")
    # The hub hands a published message to its sockets a moment after the
    # ack; once the friend has the marker, it has handed out all three, so the
    # lister's socket will not get them live.
    await before_marker(friend)
    lister = await connect(issuer.token("lister"))
    await send_message(lister, quiet_room, "hello quiet")

    body = conforms(await call("get", "/chat/rooms", "lister"), "/chat/rooms")
    assert [r["chatRoomId"] for r in body["rooms"]] == [quiet_room, busy_room]
    quiet, busy = body["rooms"]
    assert (quiet["name"], quiet["lastMessage"], quiet["lastSeq"], quiet["unreadCount"]) == (
        "Quiet",
        "hello quiet",
        1,
        0,
    )
    assert (busy["name"], busy["lastMessage"], busy["lastSeq"], busy["unreadCount"]) == ("Group chat", "b2", 3, 3)
    assert sorted(busy["onlineParticipantIds"]) == ["friend-2", "lister"]
    assert quiet["onlineParticipantIds"] == ["lister"]

    await lister.send_json_to({"action": "markRead", "chatRoomId": busy_room, "seq": 2})
    # call() approved the lister once more, which its socket hears: read on
    # to the read receipt.
    while (await next_frame(lister))["type"] != "read":
        pass
    body = conforms(await call("get", "/chat/rooms", "lister"), "/chat/rooms")
    assert [r["unreadCount"] for r in body["rooms"]] == [0, 1]


async def test_activity_join_creates_once_then_adds_and_is_idempotent(call, connect, issuer):
    first = await call("post", "/activities/hike-1/join", "hiker-1", nickname="Ann")
    room = conforms(first, "/activities/{activityId}/join", "post")["room"]
    assert first.status_code == 201 and room["type"] == "group" and room["activityId"] == "hike-1"
    second = await call("post", "/activities/hike-1/join", "hiker-2", nickname="Ben")
    assert conforms(second, "/activities/{activityId}/join", "post")["room"]["chatRoomId"] == room["chatRoomId"]
    again = await call("post", "/activities/hike-1/join", "hiker-2", nickname="Ben")
    assert again.status_code == 200 and conforms(again, "/activities/{activityId}/join", "post")["joined"] is False

    body = conforms(await call("get", f"/chat/rooms/{room['chatRoomId']}", "hiker-1"), "/chat/rooms/{roomId}")
    assert body["room"]["participantIds"] == ["hiker-1", "hiker-2"]
    assert [(m["senderId"], m["content"], m["readBy"]) for m in body["messages"]] == [
        ("system", "Room created", []),
        ("system", "Ann joined", []),
        ("system", "Ben joined", []),
    ]
    assert [item["SK"] for item in raw_items("ACTIVITY#hike-1")] == [f"CHATROOM#{room['chatRoomId']}", "METADATA"]


async def test_fifty_first_member_gets_409(call):
    for n in range(50):
        assert (await call("post", "/activities/full-1/join", f"member-{n}")).status_code == 201
    response = await call("post", "/activities/full-1/join", "member-50")
    assert response.status_code == 409
    assert conforms(response, "/activities/{activityId}/join", "post")["error"]["code"] == "ROOM_FULL"


async def test_leave_stops_delivery_and_announces(call, connect, issuer):
    await approve("stayer")
    await approve("leaver")
    room_id = await new_room("stayer", "leaver", "third")
    stayer = await connect(issuer.token("stayer"))
    leaver = await connect(issuer.token("leaver"))
    response = await call("post", f"/chat/rooms/{room_id}/leave", "leaver", verified=False, nickname="Lee")
    assert conforms(response, "/chat/rooms/{roomId}/leave", "post") == {"left": True, "chatRoomId": room_id}
    assert await next_frame(leaver) == {"type": "roomLeft", "data": {"chatRoomId": room_id}}
    assert (await next_frame(stayer))["data"]["content"] == "Lee left"
    await send_message(stayer, room_id, "anyone?")
    frames = await before_marker(leaver)
    assert "anyone?" not in [frame["data"].get("content") for frame in frames]
    assert (await call("get", f"/chat/rooms/{room_id}", "leaver")).status_code == 403


async def test_request_flood_gets_429(call, settings):
    settings.API_RATE, settings.API_BURST = 1, 2
    api._budgets = None
    try:
        responses = [await call("get", "/chat/rooms", "hasty") for _ in range(4)]
    finally:
        api._budgets = None
    assert [response.status_code for response in responses] == [200, 200, 429, 429]
    error = conforms(responses[-1], "/chat/rooms")["error"]
    assert error["code"] == "RATE_LIMITED"
    assert responses[-1]["Retry-After"] == str(math.ceil(error["retryAfterMs"] / 1000))


async def test_unknown_route_is_a_json_404(async_client):
    response = await async_client.get("/chat/nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "NOT_FOUND", "message": "Not found"}}


async def test_only_staff_bind_an_activity_when_creating_a_room(call):
    squat = await call("post", "/chat/rooms", "squatter", {"participantIds": ["guest"], "activityId": "party-1"})
    assert squat.status_code == 403
    assert conforms(squat, "/chat/rooms", "post")["error"]["code"] == "FORBIDDEN"
    staff = {"participantIds": ["guest"], "activityId": "party-1"}
    created = await call("post", "/chat/rooms", "organiser", staff, **{"cognito:groups": ["admin"]})
    room_id = conforms(created, "/chat/rooms", "post")["room"]["chatRoomId"]
    joined = await call("post", "/activities/party-1/join", "late-guest")
    assert conforms(joined, "/activities/{activityId}/join", "post")["room"]["chatRoomId"] == room_id
    again = await call("post", "/chat/rooms", "organiser", staff, **{"cognito:groups": ["admin"]})
    assert again.status_code == 409
    assert conforms(again, "/chat/rooms", "post")["error"]["code"] == "ACTIVITY_TAKEN"


async def test_an_unverified_user_reaches_nobody_over_http(call, connect, issuer):
    await approve("member")
    room_id = await new_room("member", "pending-p")
    member = await connect(issuer.token("member"))
    nickname = {"nickname": "ADMIN NOTICE: verify your account at http://evil.example/login"}
    attempts = [
        ("/chat/rooms", "/chat/rooms", {"participantIds": ["member"], "name": "Free prizes"}),
        ("/activities/act-p/join", "/activities/{activityId}/join", None),
    ]
    for path, documented, body in attempts:
        refused = await call("post", path, "pending-p", body, verified=False, **nickname)
        assert refused.status_code == 403
        assert conforms(refused, documented, "post")["error"]["code"] == "VERIFICATION_REQUIRED"
    assert (await call("get", "/chat/rooms", "pending-p", verified=False)).status_code == 200
    assert (await call("get", f"/chat/rooms/{room_id}", "pending-p", verified=False)).status_code == 200
    left = await call("post", f"/chat/rooms/{room_id}/leave", "pending-p", verified=False, **nickname)
    assert left.status_code == 200
    assert (await next_frame(member))["data"]["content"] == "A participant left"
    assert await quiet(member)
