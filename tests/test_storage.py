"""The table as other tools see it: items keep the reference system's layout."""
import time

import pytest
from boto3.dynamodb.types import TypeDeserializer
from django.conf import settings

from chat import storage
from tests.conftest import approve, new_room, next_frame

pytestmark = pytest.mark.django_db(transaction=True)


def raw_items(pk: str) -> list[dict]:
    """Every item under pk, straight from DynamoDB."""
    response = storage.client().query(
        TableName=settings.DYNAMODB_TABLE,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    deserializer = TypeDeserializer()
    return [{k: deserializer.deserialize(v) for k, v in item.items()} for item in response["Items"]]


def connection_items(user_id: str) -> list[dict]:
    return [item for item in raw_items(f"USER#{user_id}") if item["SK"].startswith("CONNECTION#")]


def is_iso_ms(text: str) -> bool:
    return len(text) == 24 and text[10] == "T" and text.endswith("Z")


async def test_connect_writes_both_registry_items_and_disconnect_deletes_them(connect, issuer):
    socket = await connect(issuer.token("layout-user"))
    [user_connection] = connection_items("layout-user")
    connection_id = user_connection["connectionId"]
    [connection] = raw_items(f"CONNECTION#{connection_id}")
    now = time.time()

    assert connection["SK"] == "METADATA"
    assert connection["Type"] == "Connection"
    assert connection["userId"] == "layout-user"
    assert user_connection["SK"] == f"CONNECTION#{connection_id}"
    assert user_connection["Type"] == "UserConnection"
    for item in (connection, user_connection):
        assert item["connectionId"] == connection_id
        assert is_iso_ms(item["connectedAt"])
        assert now + 86400 - 60 < item["ttl"] <= now + 86400  # Unix seconds, one day ahead

    await socket.disconnect()
    assert connection_items("layout-user") == []
    assert raw_items(f"CONNECTION#{connection_id}") == []


async def test_room_and_participations_use_reference_keys(connect, issuer):
    room_id = await new_room("p-one", "p-two", name="Pair")
    [metadata] = raw_items(f"CHATROOM#{room_id}")
    assert metadata["SK"] == "METADATA"
    assert metadata["chatRoomId"] == room_id
    assert metadata["participantIds"] == ["p-one", "p-two"]
    assert (metadata["type"], metadata["name"]) == ("direct", "Pair")
    assert is_iso_ms(metadata["createdAt"])
    [participation] = raw_items("USER#p-one")
    assert participation["SK"] == f"CHATROOM#{room_id}"
    assert participation["participantId"] == "p-one"
    assert participation["GSI1PK"] == "USERROOMS#p-one"
    assert participation["GSI1SK"] == participation["joinedAt"]


async def test_sent_message_and_preview_use_reference_keys(connect, issuer):
    await approve("writer")
    room_id = await new_room("writer", "reader", "third")
    socket = await connect(issuer.token("writer"))
    content = "x" * 150
    await socket.send_json_to({"action": "sendMessage", "chatRoomId": room_id, "content": content, "clientMessageId": "m-1"})
    sent = (await next_frame(socket))["data"]

    items = {item["SK"]: item for item in raw_items(f"CHATROOM#{room_id}")}
    message = items[f"MESSAGE#{sent['timestamp']}#{sent['messageId']}"]
    assert {k: v for k, v in message.items() if k not in ("PK", "SK")} == {
        "messageId": sent["messageId"],
        "chatRoomId": room_id,
        "senderId": "writer",
        "content": content,
        "messageType": "user",
        "readBy": ["writer"],
        "createdAt": sent["createdAt"],
        "timestamp": sent["timestamp"],
        "seq": 1,
        "clientMessageId": "m-1",
    }
    preview = items["LASTMESSAGE"]
    assert preview["lastMessage"] == content[:100]
    assert preview["lastMessageAt"] == sent["createdAt"]
    assert items["METADATA"]["type"] == "group"


def test_last_message_never_goes_backwards():
    storage.put_room(storage.Room(room_id="order-room", participant_ids=("a",), type="group", created_at="t"))
    later = storage.Message("m2", "order-room", "a", "later", "user", timestamp=2000, seq=2)
    earlier = storage.Message("m1", "order-room", "a", "earlier", "user", timestamp=1000, seq=1)
    storage.update_last_message(later)
    storage.update_last_message(earlier)  # arrives late, e.g. from a slower process
    assert storage.get_last_message("order-room")["lastMessage"] == "later"


def test_expired_connections_are_invisible_to_reads():
    now = int(time.time())
    storage.put_connection(storage.Connection("live-conn", "ttl-user", "2026-01-01T00:00:00.000Z", now + 60))
    storage.put_connection(storage.Connection("dead-conn", "ttl-user", "2026-01-01T00:00:00.000Z", now - 1))
    assert storage.user_connection_ids("ttl-user", now=now) == ["live-conn"]
    assert storage.get_connection("dead-conn", now=now) is None
    assert storage.get_connection("live-conn", now=now).user_id == "ttl-user"


def test_create_table_is_idempotent():
    assert storage.create_table() is False
