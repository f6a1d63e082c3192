"""The table as other tools see it: items keep the reference system's layout."""
import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from boto3.dynamodb.types import TypeDeserializer
from django.conf import settings

from chat import storage
from chat.errors import StorageUnavailable
from chat.storage import base, batching
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
    metadata = items["METADATA"]
    assert metadata["type"] == "group"
    # The preview and the sender's watermark move in the write that took the seq.
    assert (metadata["lastMessage"], metadata["lastMessageAt"]) == (content[:100], sent["createdAt"])
    assert (metadata["lastSeq"], metadata["sentSeq#writer"]) == (1, 1)
    assert "LASTMESSAGE" not in items  # the reference's preview item: read, no longer written


def store(room_id: str, sender: str, content: str) -> tuple[storage.Message, storage.Allocation]:
    message_id = f"id-{content}"
    place = storage.allocate(room_id, sender_id=sender, message_id=message_id, content=content)
    return storage.Message(message_id, room_id, sender, content, "user", place.timestamp, place.seq), place


def preview_of(room_id: str) -> str | None:
    return storage.room_summaries([room_id])[room_id].last_message


def test_preview_follows_seq_whichever_put_lands_first():
    storage.put_room(storage.Room(room_id="order-room", participant_ids=("a",), type="group", created_at="t"))
    (earlier, _), (later, _) = store("order-room", "a", "earlier"), store("order-room", "a", "later")
    storage.put_message(later)
    storage.put_message(earlier)  # lands late, e.g. from a slower process
    assert preview_of("order-room") == "later"


def test_a_failed_message_gives_back_the_preview_it_took():
    storage.put_room(storage.Room(room_id="withdraw-room", participant_ids=("a",), type="group", created_at="t"))
    first, place = store("withdraw-room", "a", "first")
    storage.withdraw_preview(first, place.previous_preview)
    assert preview_of("withdraw-room") is None  # there was none before
    stored, _ = store("withdraw-room", "a", "stored")
    failed, place = store("withdraw-room", "a", "failed")
    storage.withdraw_preview(failed, place.previous_preview)
    summary = storage.room_summaries(["withdraw-room"])["withdraw-room"]
    assert (summary.last_message, summary.last_message_at) == ("stored", stored.created_at)


def test_a_withdrawn_preview_never_hides_a_later_message():
    storage.put_room(storage.Room(room_id="later-room", participant_ids=("a",), type="group", created_at="t"))
    failed, place = store("later-room", "a", "failed")
    store("later-room", "a", "stored")
    storage.withdraw_preview(failed, place.previous_preview)
    assert preview_of("later-room") == "stored"


def test_sending_reads_the_room_up_to_the_sent_message():
    room = storage.Room(room_id="sent-room", participant_ids=("a", "b"), type="group", created_at="t")
    storage.put_room(room)
    store("sent-room", "b", "one")
    store("sent-room", "a", "two")
    store("sent-room", "b", "three")
    assert storage.read_seqs(storage.get_room("sent-room"), ["a", "b"]) == {"a": 2, "b": 3}
    storage.advance_read("a", "sent-room", 3)
    assert storage.read_seqs(storage.get_room("sent-room"), ["a", "b"]) == {"a": 3, "b": 3}


def test_leaving_drops_the_members_sent_seq():
    storage.put_room(storage.Room(room_id="leave-room", participant_ids=("a", "b"), type="group", created_at="t"))
    store("leave-room", "a", "bye")
    assert storage.remove_participant("leave-room", "a")
    room = storage.get_room("leave-room")
    assert (room.participant_ids, room.sent_seqs) == (("b",), {})


def test_reference_rooms_keep_their_lastmessage_preview():
    storage.put_room(storage.Room(room_id="legacy-room", participant_ids=("a",), type="group", created_at="t"))
    storage.client().put_item(
        TableName=settings.DYNAMODB_TABLE,
        Item={
            "PK": {"S": "CHATROOM#legacy-room"},
            "SK": {"S": "LASTMESSAGE"},
            "lastMessage": {"S": "from the reference"},
            "lastMessageAt": {"S": "2025-01-01T00:00:00.000Z"},
        },
    )
    summary = storage.room_summaries(["legacy-room"])["legacy-room"]
    assert (summary.last_message, summary.last_message_at) == ("from the reference", "2025-01-01T00:00:00.000Z")
    store("legacy-room", "a", "newer")
    assert preview_of("legacy-room") == "newer"


class RecordingClient:
    """The real client, with each BatchWriteItem's keys recorded, and a
    check that no key is in two calls at once."""

    def __init__(self, real) -> None:
        self.real, self.calls, self.in_flight, self.overlaps = real, [], set(), []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def batch_write_item(self, RequestItems):
        [requests] = RequestItems.values()
        keys = [batching._key_of(request) for request in requests]
        with self.lock:
            self.calls.append(keys)
            self.overlaps += [key for key in keys if key in self.in_flight]
            self.in_flight.update(keys)
        try:
            time.sleep(0.01)  # long enough for a second flusher to try the same keys
            return self.real.batch_write_item(RequestItems=RequestItems)
        finally:
            with self.lock:
                self.in_flight.difference_update(keys)


@pytest.fixture
def recorded(monkeypatch):
    client = RecordingClient(storage.client())
    monkeypatch.setattr(base, "client", lambda: client)
    return client


def test_concurrent_puts_share_batches_and_all_land(recorded):
    writer = batching.WriteBatcher()
    items = [{"PutRequest": {"Item": base.to_item({"PK": "BATCH#test", "SK": f"ITEM#{n:03}"})}} for n in range(120)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(lambda item: writer.write([item]), items))
    assert len(raw_items("BATCH#test")) == 120
    assert max(len(call) for call in recorded.calls) > 1
    assert len(recorded.calls) < 120


def test_writes_of_one_key_land_in_order_and_never_overlap(recorded):
    writer = batching.WriteBatcher()
    versions = [{"PutRequest": {"Item": base.to_item({"PK": "BATCH#same", "SK": "ITEM", "v": v})}} for v in range(6)]
    others = [{"PutRequest": {"Item": base.to_item({"PK": "BATCH#other", "SK": f"I{n}"})}} for n in range(30)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = [pool.submit(writer.write, versions), pool.submit(writer.write, others)]
        [future.result() for future in done]
    assert [item["v"] for item in raw_items("BATCH#same")] == [5]
    assert recorded.overlaps == []
    assert sum(call.count(("BATCH#same", "ITEM")) for call in recorded.calls) == 6


def test_an_item_the_endpoint_refuses_fails_alone():
    good = [{"PK": "BATCH#mixed", "SK": f"ITEM#{n}"} for n in range(10)]
    oversized = {"PK": "BATCH#mixed", "SK": "ITEM#big", "blob": "x" * 500_000}  # over DynamoDB's 400 KB
    with pytest.raises(StorageUnavailable):
        batching.put(*good, oversized)  # queued together, so written in one batch first
    assert len(raw_items("BATCH#mixed")) == 10


def test_a_write_that_cannot_start_in_time_fails_unwritten(monkeypatch):
    monkeypatch.setattr(batching, "WRITE_DEADLINE", -1.0)
    with pytest.raises(StorageUnavailable):
        batching.put({"PK": "BATCH#late", "SK": "ITEM"})
    assert raw_items("BATCH#late") == []


def test_a_write_that_timed_out_is_never_written_later(monkeypatch):
    writer = batching.WriteBatcher()
    monkeypatch.setattr(batching, "WRITE_DEADLINE", -1.0)
    with pytest.raises(StorageUnavailable):
        writer.write([{"PutRequest": {"Item": base.to_item({"PK": "BATCH#timed-out", "SK": "late"})}}])
    monkeypatch.setattr(batching, "WRITE_DEADLINE", 8.0)
    writer.write([{"PutRequest": {"Item": base.to_item({"PK": "BATCH#timed-out", "SK": "on-time"})}}])
    assert [item["SK"] for item in raw_items("BATCH#timed-out")] == ["on-time"]


def test_batched_deletes_remove_items_and_ignore_missing_ones():
    batching.put({"PK": "BATCH#delete", "SK": "A"}, {"PK": "BATCH#delete", "SK": "B"})
    batching.delete({"PK": "BATCH#delete", "SK": "A"}, {"PK": "BATCH#delete", "SK": "never-there"})
    assert [item["SK"] for item in raw_items("BATCH#delete")] == ["B"]


def test_expired_connections_are_invisible_to_reads():
    now = int(time.time())
    storage.put_connection(storage.Connection("live-conn", "ttl-user", "2026-01-01T00:00:00.000Z", now + 60))
    storage.put_connection(storage.Connection("dead-conn", "ttl-user", "2026-01-01T00:00:00.000Z", now - 1))
    assert storage.user_connection_ids("ttl-user", now=now) == ["live-conn"]
    assert storage.get_connection("dead-conn", now=now) is None
    assert storage.get_connection("live-conn", now=now).user_id == "ttl-user"


def test_create_table_is_idempotent():
    assert storage.create_table() is False


def test_storage_calls_leave_no_botocore_garbage_for_the_cycle_collector():
    """A loaded server must not run collections for every storage call."""
    storage.get_room("warm-up")
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(20):
            storage.get_room(f"no-such-room-{n}")
        gc.collect()
        leftovers = [o for o in gc.garbage if type(o).__module__.startswith("botocore")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert leftovers == []


def test_threads_that_need_the_client_at_once_build_it_once(monkeypatch):
    builds = []
    build = base._build_client
    monkeypatch.setattr(base, "_build_client", lambda: builds.append(1) or build())
    storage.reset_client()
    start = threading.Barrier(8)

    def first_call() -> object:
        start.wait()
        return storage.client()

    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = list(pool.map(lambda _: first_call(), range(8)))
    assert len(builds) == 1
    assert all(built is clients[0] for built in clients)
