"""Service actions shared by the consumer, commands and admin."""

import time

import pytest
from django.db import transaction

from chat import delivery, domain, services, storage
from chat.consumers import CLOSE_EXPIRED
from chat.errors import InvalidRequest, RoomNotFound
from chat.models import Profile
from tests.helpers import GroupListener, connection_items, new_room, next_frame, raw_items

pytestmark = pytest.mark.django_db(transaction=True)


async def test_system_message_is_stored_and_delivered_like_any_message(connect, issuer):
    room_id = await new_room("sys-a", "sys-b")
    member = await connect(issuer.token("sys-a"))
    message = await services.send_system_message(room_id=room_id, content="sys-b joined")
    frame = await next_frame(member)
    assert frame["data"] == {
        "messageId": message.message_id,
        "chatRoomId": room_id,
        "senderId": "system",
        "content": "sys-b joined",
        "messageType": "system",
        "createdAt": message.created_at,
        "timestamp": message.timestamp,
        "seq": 1,
    }
    [stored] = (await storage.messages_page(room_id, limit=100))[0]
    assert (stored.sender_id, stored.message_type, stored.read_by) == ("system", "system", ())


def test_system_message_from_sync_code_needs_an_existing_room():
    with pytest.raises(RoomNotFound):
        services.send_system_message_sync(room_id="no-such-room", content="hello")


def test_room_needs_one_to_fifty_distinct_participants():
    with pytest.raises(InvalidRequest):
        services.create_room_sync(participant_ids=[])
    with pytest.raises(InvalidRequest):
        services.create_room_sync(participant_ids=[f"u{n}" for n in range(51)])
    room = services.create_room_sync(participant_ids=["dup", "dup", "solo"])
    assert (room.participant_ids, room.type) == (("dup", "solo"), "direct")


def test_a_decision_rolled_back_with_the_callers_transaction_is_never_announced():
    with GroupListener(delivery.user_group("undecided")) as listener:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.set_verification(user_ids=["undecided"], status="rejected")
            raise RuntimeError("the caller's transaction fails after the decision")
        services.set_verification(user_ids=["undecided"], status="approved")
    # The listener keeps the first event it hears: the committed decision's.
    assert listener.message is not None and listener.message["status"] == "approved"
    assert Profile.objects.get(user_id="undecided").status == "approved"


async def test_reaper_deletes_both_items_of_expired_connections_only():
    await services.reap_expired_connections()  # whatever earlier tests left to expire
    now = int(time.time())
    await storage.put_connection(domain.Connection("ghost-conn", "ghost", "t", now - 5))
    await storage.put_connection(domain.Connection("alive-conn", "ghost", "t", now + 600))
    assert await services.reap_expired_connections() == 1
    assert raw_items("CONNECTION#ghost-conn") == []
    assert [item["SK"] for item in connection_items("ghost")] == ["CONNECTION#alive-conn"]
    assert len(raw_items("CONNECTION#alive-conn")) == 1


async def test_reaper_closes_an_open_socket_whose_items_expired(connect, issuer):
    socket = await connect(issuer.token("stale"))
    [item] = connection_items("stale")
    expired = domain.Connection(item["connectionId"], "stale", item["connectedAt"], int(time.time()) - 1)
    await storage.put_connection(expired)
    await services.reap_expired_connections()
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_EXPIRED}
    assert connection_items("stale") == []
