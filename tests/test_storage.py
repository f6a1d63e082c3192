"""The table as other tools see it: items keep the reference system's layout."""

import asyncio
import time

import pytest
from django.conf import settings

from chat import domain, storage
from chat.errors import StorageUnavailable
from chat.storage import batching, control, dynamo
from tests.helpers import approve, connection_items, eventually, new_room, next_frame, raw_items

pytestmark = pytest.mark.django_db(transaction=True)


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
    await socket.send_json_to(
        {"action": "sendMessage", "chatRoomId": room_id, "content": content, "clientMessageId": "m-1"}
    )
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
    # The reference's preview item follows, off the ack path.
    last = await eventually(
        lambda: next((i for i in raw_items(f"CHATROOM#{room_id}") if i["SK"] == "LASTMESSAGE"), None)
    )
    assert {k: v for k, v in last.items() if k not in ("PK", "SK")} == {
        "lastMessage": content[:100],
        "lastMessageAt": sent["createdAt"],
        "lastSeq": 1,
    }


async def store(room_id: str, sender: str, content: str) -> tuple[domain.Message, storage.Allocation]:
    message_id = f"id-{content}"
    place = await storage.allocate(room_id, sender_id=sender, message_id=message_id, content=content)
    return domain.Message(message_id, room_id, sender, content, "user", place.timestamp, place.seq), place


async def preview_of(room_id: str) -> str | None:
    return (await storage.room_summaries([room_id]))[room_id].last_message


async def put_room(room_id: str, *participants: str) -> domain.Room:
    room = domain.Room(room_id=room_id, participant_ids=participants, type="group", created_at="t")
    await storage.put_room(room)
    return room


async def test_preview_follows_seq_whichever_put_lands_first():
    await put_room("order-room", "a")
    (earlier, _), (later, _) = await store("order-room", "a", "earlier"), await store("order-room", "a", "later")
    await storage.put_message(later)
    await storage.put_message(earlier)  # lands late, e.g. from a slower process
    assert await preview_of("order-room") == "later"


async def test_a_failed_message_gives_back_the_preview_it_took():
    await put_room("withdraw-room", "a")
    first, place = await store("withdraw-room", "a", "first")
    await storage.withdraw_preview(first, place.previous_preview)
    assert await preview_of("withdraw-room") is None  # there was none before
    stored, _ = await store("withdraw-room", "a", "stored")
    failed, place = await store("withdraw-room", "a", "failed")
    await storage.withdraw_preview(failed, place.previous_preview)
    summary = (await storage.room_summaries(["withdraw-room"]))["withdraw-room"]
    assert (summary.last_message, summary.last_message_at) == ("stored", stored.created_at)


async def test_a_withdrawn_preview_never_hides_a_later_message():
    await put_room("later-room", "a")
    failed, place = await store("later-room", "a", "failed")
    await store("later-room", "a", "stored")
    await storage.withdraw_preview(failed, place.previous_preview)
    assert await preview_of("later-room") == "stored"


async def test_lastmessage_keeps_the_newest_preview_whatever_order_it_is_noted_in():
    await put_room("last-room", "a")
    newer, _ = await store("last-room", "a", "newer")
    older = domain.Message("id-older", "last-room", "a", "older", "user", newer.timestamp - 1, newer.seq - 1)
    storage.note_last_message(newer)
    await eventually(lambda: "LASTMESSAGE" in {i["SK"] for i in raw_items("CHATROOM#last-room")})
    storage.note_last_message(older)  # from a slower process
    await dynamo.plane().extras["previews"].close()
    [last] = [i for i in raw_items("CHATROOM#last-room") if i["SK"] == "LASTMESSAGE"]
    assert (last["lastMessage"], last["lastSeq"]) == ("newer", newer.seq)


async def test_lastmessage_gets_one_write_per_room_per_window(monkeypatch, settings):
    settings.LASTMESSAGE_WINDOW_MS = 5_000  # the five stores below take well under that, however loaded the machine
    await put_room("busy-room", "a")
    writes, update = [], dynamo.update

    async def counted(key, **request):
        if key["SK"] == "LASTMESSAGE":
            writes.append(key["PK"])
        return await update(key, **request)

    monkeypatch.setattr(dynamo, "update", counted)
    for n in range(5):
        storage.note_last_message((await store("busy-room", "a", f"burst-{n}"))[0])
    await dynamo.plane().extras["previews"].close()
    assert writes == ["CHATROOM#busy-room"]
    [last] = [i for i in raw_items("CHATROOM#busy-room") if i["SK"] == "LASTMESSAGE"]
    assert last["lastMessage"] == "burst-4"


async def test_sending_reads_the_room_up_to_the_sent_message():
    await put_room("sent-room", "a", "b")
    await store("sent-room", "b", "one")
    await store("sent-room", "a", "two")
    await store("sent-room", "b", "three")
    assert await storage.read_seqs(await storage.get_room("sent-room"), ["a", "b"]) == {"a": 2, "b": 3}
    await storage.advance_read("a", "sent-room", 3)
    assert await storage.read_seqs(await storage.get_room("sent-room"), ["a", "b"]) == {"a": 3, "b": 3}


async def test_leaving_drops_the_members_sent_seq():
    await put_room("leave-room", "a", "b")
    await store("leave-room", "a", "bye")
    assert await storage.remove_participant("leave-room", "a")
    room = await storage.get_room("leave-room")
    assert (room.participant_ids, room.sent_seqs) == (("b",), {})


async def test_reference_rooms_keep_their_lastmessage_preview():
    await put_room("legacy-room", "a")
    control.client().put_item(
        TableName=settings.DYNAMODB_TABLE,
        Item={
            "PK": {"S": "CHATROOM#legacy-room"},
            "SK": {"S": "LASTMESSAGE"},
            "lastMessage": {"S": "from the reference"},
            "lastMessageAt": {"S": "2025-01-01T00:00:00.000Z"},
        },
    )
    summary = (await storage.room_summaries(["legacy-room"]))["legacy-room"]
    assert (summary.last_message, summary.last_message_at) == ("from the reference", "2025-01-01T00:00:00.000Z")
    await store("legacy-room", "a", "newer")
    assert await preview_of("legacy-room") == "newer"


class Recorder:
    """dynamo.batch_write, with each call's keys recorded, and a check that
    no key is in two calls at once."""

    def __init__(self, real) -> None:
        self.real, self.calls, self.in_flight, self.overlaps = real, [], set(), []

    async def __call__(self, requests):
        keys = [batching._key_of(request) for request in requests]
        self.calls.append(keys)
        self.overlaps += [key for key in keys if key in self.in_flight]
        self.in_flight.update(keys)
        try:
            await asyncio.sleep(0.01)  # long enough for a second batch to try the same keys
            return await self.real(requests)
        finally:
            self.in_flight.difference_update(keys)


@pytest.fixture
def recorded(monkeypatch):
    recorder = Recorder(dynamo.batch_write)
    monkeypatch.setattr(dynamo, "batch_write", recorder)
    return recorder


def put_request(**item) -> dict:
    return {"PutRequest": {"Item": dynamo.to_item(item)}}


async def test_concurrent_puts_share_batches_and_all_land(recorded):
    writer = batching.WriteBatcher()
    items = [put_request(PK="BATCH#test", SK=f"ITEM#{n:03}") for n in range(120)]
    await asyncio.gather(*(writer.write([item]) for item in items))
    assert len(raw_items("BATCH#test")) == 120
    assert max(len(call) for call in recorded.calls) > 1
    assert len(recorded.calls) < 120


@pytest.mark.parametrize("max_in_flight", [1, 2, 4])
async def test_writes_queued_while_every_slot_is_busy_are_all_written(max_in_flight):
    """Batches that end together must still start the next: each write waits
    for its own, with nobody else writing after it (the end of a storm)."""
    writer = batching.WriteBatcher(max_in_flight=max_in_flight)
    items = [put_request(PK="BATCH#tail", SK=f"ITEM#{n:03}") for n in range(200)]
    await asyncio.wait_for(asyncio.gather(*(writer.write([item]) for item in items)), 20)
    assert len(raw_items("BATCH#tail")) == 200


async def test_writes_of_one_key_land_in_order_and_never_overlap(recorded):
    writer = batching.WriteBatcher()
    versions = [put_request(PK="BATCH#same", SK="ITEM", v=v) for v in range(6)]
    others = [put_request(PK="BATCH#other", SK=f"I{n}") for n in range(30)]
    await asyncio.gather(writer.write(versions), writer.write(others))
    assert [item["v"] for item in raw_items("BATCH#same")] == [5]
    assert recorded.overlaps == []
    assert sum(call.count(("BATCH#same", "ITEM")) for call in recorded.calls) == 6


async def test_an_item_the_endpoint_refuses_fails_alone():
    good = [{"PK": "BATCH#mixed", "SK": f"ITEM#{n}"} for n in range(10)]
    oversized = {"PK": "BATCH#mixed", "SK": "ITEM#big", "blob": "x" * 500_000}  # over DynamoDB's 400 KB
    results = await asyncio.gather(*(batching.put(item) for item in [*good, oversized]), return_exceptions=True)
    assert results[:10] == [None] * 10
    assert isinstance(results[10], StorageUnavailable)
    assert len(raw_items("BATCH#mixed")) == 10


async def test_a_write_that_cannot_start_in_time_fails_unwritten(monkeypatch):
    monkeypatch.setattr(batching, "WRITE_DEADLINE", -1.0)
    with pytest.raises(StorageUnavailable):
        await batching.put({"PK": "BATCH#late", "SK": "ITEM"})
    assert raw_items("BATCH#late") == []


async def test_a_throttled_write_is_not_retried_past_its_deadline(monkeypatch):
    calls = []

    async def throttled_once(requests):
        calls.append(len(requests))
        if len(calls) == 1:
            await asyncio.sleep(0.05)  # past the deadline by the time it answers
            return requests  # all unprocessed, as under throttling
        return await real(requests)

    real = dynamo.batch_write
    monkeypatch.setattr(dynamo, "batch_write", throttled_once)
    monkeypatch.setattr(batching, "WRITE_DEADLINE", 0.02)
    with pytest.raises(StorageUnavailable):
        await batching.batcher().write([put_request(PK="BATCH#throttled", SK="late")])
    assert calls == [1]
    assert raw_items("BATCH#throttled") == []


async def test_batched_deletes_remove_items_and_ignore_missing_ones():
    await batching.put({"PK": "BATCH#delete", "SK": "A"}, {"PK": "BATCH#delete", "SK": "B"})
    await batching.delete({"PK": "BATCH#delete", "SK": "A"}, {"PK": "BATCH#delete", "SK": "never-there"})
    assert [item["SK"] for item in raw_items("BATCH#delete")] == ["B"]


async def test_expired_connections_are_invisible_to_reads():
    now = int(time.time())
    await storage.put_connection(domain.Connection("live-conn", "ttl-user", "2026-01-01T00:00:00.000Z", now + 60))
    await storage.put_connection(domain.Connection("dead-conn", "ttl-user", "2026-01-01T00:00:00.000Z", now - 1))
    assert await storage.user_connection_ids("ttl-user", now=now) == ["live-conn"]
    assert await storage.get_connection("dead-conn", now=now) is None
    assert (await storage.get_connection("live-conn", now=now)).user_id == "ttl-user"


def test_create_table_is_idempotent():
    assert storage.create_table() is False


def test_sync_callers_get_a_session_of_their_own_that_is_closed_after():
    planes = []

    async def call() -> domain.Room | None:
        planes.append(dynamo.plane())
        return await storage.get_room("no-such-room")

    assert storage.run_sync(call) is None
    assert storage.run_sync(call) is None
    assert planes[0] is not planes[1]
    assert all(plane.session.closed for plane in planes)


async def test_concurrent_first_calls_on_a_loop_share_one_session(monkeypatch):
    await dynamo.close()
    builds = []
    build = dynamo._build
    monkeypatch.setattr(dynamo, "_build", lambda: builds.append(1) or build())
    await asyncio.gather(*(storage.get_room(f"none-{n}") for n in range(20)))
    assert len(builds) == 1
