"""chat/keys.py spells the reference's table layout, and its sort keys
sort the way the queries rely on."""

import uuid

import pytest

from chat import keys

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "key,expected",
    [
        (keys.connection("c1"), ("CONNECTION#c1", "METADATA")),
        (keys.user_connection("u1", "c1"), ("USER#u1", "CONNECTION#c1")),
        (keys.room("r1"), ("CHATROOM#r1", "METADATA")),
        (keys.message("r1", 1700000000123, "m1"), ("CHATROOM#r1", "MESSAGE#1700000000123#m1")),
        (keys.last_message("r1"), ("CHATROOM#r1", "LASTMESSAGE")),
        (keys.participation("u1", "r1"), ("USER#u1", "CHATROOM#r1")),
        (keys.profile("u1"), ("USER#u1", "PROFILE")),
        (keys.activity_room("a1", "r1"), ("ACTIVITY#a1", "CHATROOM#r1")),
    ],
    ids=["connection", "user-connection", "room", "message", "last-message", "participation", "profile", "activity"],
)
def test_reference_items_keep_the_reference_keys(key, expected):
    assert (key["PK"], key["SK"]) == expected


def test_message_keys_sort_between_the_range_bounds_and_before_metadata():
    sort_keys = [keys.message("r", ms, str(uuid.uuid4()))["SK"] for ms in (1, 999, 1700000000123)]
    for sort_key in sort_keys:
        assert keys.MESSAGE_PREFIX < sort_key < keys.MESSAGE_RANGE_END < keys.METADATA
    assert keys.LAST_MESSAGE < keys.MESSAGE_PREFIX


def test_a_participations_sort_key_gives_back_its_room():
    assert keys.room_id_from_sk(keys.participation("u1", "room-7")["SK"]) == "room-7"
    assert keys.room_id_from_sk(keys.activity_room("a1", "room-8")["SK"]) == "room-8"


def test_each_users_sent_seq_has_an_attribute_of_its_own():
    assert keys.sent_seq_attribute("alice") == "sentSeq#alice"
    assert keys.sent_seq_attribute("alice") != keys.sent_seq_attribute("alice2")
