"""Raw client input, as chat/validation.py parses it for both transports."""

import pytest

from chat import validation
from chat.errors import InvalidJson, InvalidRequest, UnknownAction

pytestmark = pytest.mark.unit

MAX_SAFE = 2**53 - 1


@pytest.mark.parametrize("value", [0, 1, MAX_SAFE])
def test_seq_accepts_integers_javascript_can_hold(value):
    assert validation.seq(value, "seq") == value


@pytest.mark.parametrize(
    "value",
    [MAX_SAFE + 1, 10**39, -1, 1.0, True, "1", None, float("nan")],
    ids=["2**53", "40-digits", "negative", "float", "bool", "string", "null", "nan"],
)
def test_seq_refuses_what_dynamodb_or_javascript_cannot_hold(value):
    with pytest.raises(InvalidRequest, match="seq"):
        validation.seq(value, "seq")


@pytest.mark.parametrize("field", ["afterSeq", "beforeSeq"])
def test_history_cursors_are_bounded(field):
    with pytest.raises(InvalidRequest, match=field):
        validation.get_messages({"chatRoomId": "r1", field: 10**39})


def test_room_creation_keeps_participants_as_given_for_the_service_to_count():
    request = validation.create_room({"participantIds": ["b", "b"], "name": "Pair", "activityId": "hike-1"})
    assert request == validation.CreateRoom(participant_ids=["b", "b"], name="Pair", activity_id="hike-1")


@pytest.mark.parametrize(
    "fields,message",
    [
        ({}, "participantIds is required"),
        ({"participantIds": "b"}, "participantIds must be a list"),
        ({"participantIds": ["bad#id"]}, "user ids must be"),
        ({"participantIds": ["b"], "name": "n" * 101}, "name must be a string"),
        ({"participantIds": ["b"], "activityId": "bad#id"}, "activityId must be"),
    ],
)
def test_room_creation_refuses_malformed_fields(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        validation.create_room(fields)


@pytest.mark.parametrize("raw,expected", [(None, None), ("", None), ("0", 0), ("42", 42), (str(MAX_SAFE), MAX_SAFE)])
def test_query_integers_parse_plain_digits(raw, expected):
    assert validation.query_int(raw, "afterSeq") == expected


@pytest.mark.parametrize("raw", ["1" * 40, "-1", "1.5", "x", " 7", "+7", "1_000", "\u0663", "9" * 5000])
def test_query_integers_refuse_anything_but_bounded_digits(raw):
    with pytest.raises(InvalidRequest, match="afterSeq"):
        validation.query_int(raw, "afterSeq")


@pytest.mark.parametrize(
    "value",
    ["\x00", "\x00\x01\x1f\x7f", " \t\n\r", "\u200b\u200c\u200d\ufeff", "\u2028\u2029\u00a0\u3000", "\u0085\x00 "],
    ids=["nul", "controls", "whitespace", "zero-width", "separators", "mixed"],
)
def test_content_of_only_invisible_characters_is_empty(value):
    with pytest.raises(InvalidRequest, match="content must not be empty"):
        validation.content(value)


@pytest.mark.parametrize("value", ["line one\nline two\tend", "a\x00b", "\u200bx", "👍🏽", "\u0301", "\U0001faea"])
def test_content_with_anything_visible_passes_unchanged(value):
    assert validation.content(value) == value


def origin(value: str):
    return validation.origin(value)


@pytest.mark.parametrize(
    "a,b",
    [
        ("http://example.com", "http://example.com:80"),
        ("https://Example.COM", "https://example.com:443"),
        ("wss://example.com", "https://example.com"),
        ("ws://example.com:8000", "http://example.com:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_origins_compare_by_scheme_host_and_port(a, b):
    assert origin(a) is not None and origin(a) == origin(b)


@pytest.mark.parametrize(
    "a,b",
    [
        ("http://example.com", "https://example.com"),
        ("http://example.com", "http://example.com:8000"),
        ("http://example.com", "http://example.com.evil.net"),
    ],
)
def test_different_origins_differ(a, b):
    assert origin(a) != origin(b)


@pytest.mark.parametrize(
    "value",
    [
        "null",
        "",
        "example.com",
        "http://example.com:8000@evil",
        "http://user@example.com",
        "http://example.com/path",
        "http://example.com?x",
        "http://example.com#x",
        "http://example.com:99999",
        "http://example.com:x",
        "ftp://example.com",
        "http://",
        "http://exa mple.com",
    ],
)
def test_malformed_origins_parse_to_none(value):
    assert origin(value) is None


@pytest.mark.parametrize(
    "value,echoed",
    [("joinRoom", "joinRoom"), ("\ud800", None), ("x\udfffy", None), ("a" * 65, None), (["ping"], None), (None, None)],
)
def test_only_actions_utf8_can_carry_are_echoed(value, echoed):
    assert validation.echoed_action(value) == echoed


@pytest.mark.parametrize("text", [None, "", "not json", "[1]", '"ping"', "null", "[" * 100_000])
def test_a_socket_frame_must_be_a_json_object(text):
    with pytest.raises(InvalidJson):
        validation.client_frame(text)


def test_a_socket_frame_parses_to_its_object():
    assert validation.client_frame('{"action": "ping"}') == {"action": "ping"}


def test_an_action_must_be_a_known_string():
    assert validation.action("ping", {"ping", "typing"}) == "ping"
    with pytest.raises(InvalidRequest, match="action must be a string"):
        validation.action(["ping"], {"ping"})
    with pytest.raises(UnknownAction, match="Unknown action: joinRoom"):
        validation.action("joinRoom", {"ping"})
