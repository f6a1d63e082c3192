"""docs/frames.schema.json against docs/protocol.md and the frame builders:
the schema that checks every frame the socket tests receive must itself
agree with the prose, and must be able to fail."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from chat import events
from chat.domain import Message, Room
from chat.errors import InvalidJson, NotAParticipant, RateLimited, VerificationRequired
from tests.frames import FrameCheckingCommunicator, conforms_client_frame, conforms_frame, definitions

pytestmark = pytest.mark.unit

PROTOCOL = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    """The text of a `## title` section of protocol.md, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", PROTOCOL, re.S | re.M)
    assert match, f"protocol.md has no section {title!r}"
    return match.group(1)


def headings(title: str) -> set[str]:
    return set(re.findall(r"^### `([^`]+)`$", section(title), re.M))


def examples(title: str) -> list[dict]:
    """The JSON objects of the section's ```json blocks: one per block, or one
    per line in blocks that list several."""
    found = []
    for block in re.findall(r"```json\n(.*?)```", section(title), re.S):
        try:
            found.append(json.loads(block))
        except ValueError:
            found.extend(json.loads(line) for line in block.splitlines() if line.strip())
    return found


def test_every_documented_server_frame_has_a_definition_and_vice_versa():
    assert headings("Server frames") == set(definitions("ServerFrame", "type"))


def test_every_documented_client_frame_has_a_definition_and_vice_versa():
    assert headings("Client frames") == set(definitions("ClientFrame", "action"))


def test_the_protocols_examples_conform():
    found = examples("Client frames") + examples("Server frames")
    assert len(found) > 20
    for frame in found:
        if "action" in frame:
            conforms_client_frame(frame)
        else:
            conforms_frame(frame)


MESSAGE = Message("m-1", "room-1", "alice", "Hello!", "user", 1796012345678, 42)
TOMBSTONE = replace(MESSAGE, content="", deleted_at="2026-12-01T10:00:00.000Z")
ROOM = Room("room-1", ("alice", "bob"), "direct", "2026-11-30T04:25:40.000Z")


@pytest.mark.parametrize(
    "frame",
    [
        events.message_frame(MESSAGE),
        events.ack_frame(events.Ack("m-1", None, "room-1", 42, 1796012345678)),
        events.ack_frame(events.Ack("m-1", "tab1-0007", "room-1", 42, 1796012345678, duplicate=True)),
        events.error_frame(InvalidJson("Frame is not valid JSON"), None),
        events.error_frame(NotAParticipant(), "sendMessage"),
        events.error_frame(RateLimited(retry_after_ms=350), "sendMessage"),
        events.error_frame(VerificationRequired(), "sendMessage"),
        events.messages_frame("room-1", [events.message_data(MESSAGE, read_by=["alice"])], has_more=False),
        events.pong_frame(),
        events.authenticated_frame("alice", 1796012345.5),
        events.verification_frame("approved"),
        events.verification_frame("rejected", "The photo is blurred"),
        events.message_removed_frame(MESSAGE),
        events.messages_frame("room-1", [events.message_data(TOMBSTONE, read_by=["alice"])], has_more=False),
        events.room_frame(events.room_data(ROOM)),
        events.room_left_frame("room-1"),
        events.read_frame("room-1", "bob", 43),
        events.typing_frame("room-1", "alice"),
        events.presence_frame("alice", True),
    ],
    ids=lambda frame: frame["type"],
)
def test_the_builders_frames_conform(frame):
    conforms_frame(json.loads(events.encode(frame)))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "joined", "data": {"chatRoomId": "room-1"}},  # no such frame
        {"data": {}},  # no type
        {"type": "pong", "data": {}},  # a field the frame does not have
        {"type": "presence", "data": {"userId": "alice", "online": "yes"}},
        {"type": "read", "data": {"chatRoomId": "room-1", "userId": "bob"}},
        {"type": "error", "data": {"code": "NOT_A_PARTICIPANT", "message": "No"}},  # no action
        {"type": "error", "data": {"code": "RATE_LIMITED", "message": "Slow down", "action": None}},
        {"type": "error", "data": {"code": "NO_SUCH_CODE", "message": "?", "action": None}},
        {"type": "message", "data": {**events.message_data(MESSAGE), "seq": "42"}},
        {"type": "message", "data": events.message_data(MESSAGE, read_by=["alice"])},  # readBy is history's
        {
            "type": "messages",  # history's messages carry readBy
            "data": {"chatRoomId": "room-1", "messages": [events.message_data(MESSAGE)], "hasMore": False},
        },
        {
            "type": "messages",  # a tombstone says when it was removed
            "data": {
                "chatRoomId": "room-1",
                "messages": [{**events.message_data(MESSAGE, read_by=[]), "removed": True}],
                "hasMore": False,
            },
        },
        {"type": "messageRemoved", "data": {"chatRoomId": "room-1", "messageId": "m-1"}},
        {"type": "verification", "data": {"status": "rejected", "reason": ""}},
    ],
)
def test_the_schema_rejects_frames_of_the_wrong_shape(frame):
    with pytest.raises(AssertionError, match=r"does not match docs/frames\.schema\.json"):
        conforms_frame(frame)


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sendMessage", "chatRoomId": "room 1", "content": "hi"},
        {"action": "getMessages", "chatRoomId": "room-1", "afterSeq": 1, "beforeSeq": 9},
        {"action": "markRead", "chatRoomId": "room-1"},
        {"action": "joinRoom", "chatRoomId": "room-1"},
    ],
)
def test_the_schema_rejects_client_frames_the_server_refuses(frame):
    with pytest.raises(AssertionError, match=r"does not match"):
        conforms_client_frame(frame)


async def test_the_test_client_fails_on_a_frame_of_the_wrong_shape():
    """The hook itself: a server frame off the schema fails the test reading it."""

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"type": "pong", "extra": 1})})

    socket = FrameCheckingCommunicator(app, "/ws/")
    assert (await socket.connect())[0]
    with pytest.raises(AssertionError, match="does not match"):
        await socket.receive_json_from()
    await socket.disconnect()
