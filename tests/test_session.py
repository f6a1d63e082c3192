"""A registered socket's session (chat.session): kept alive while the socket
lives, and ended in one place, after which nothing of it stays stored."""

import asyncio
import time

import pytest

from chat import delivery, services, storage
from chat.domain import Connection
from chat.hub import hub
from chat.services import reaping
from tests.helpers import connection_items, eventually, raw_items

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_refresh_under_way_when_the_connection_is_reaped_leaves_nothing_behind(
    connect, issuer, monkeypatch, settings
):
    settings.CONNECTION_REFRESH_SECONDS = 0
    refresh = services.refresh_connection
    refreshing, release, landed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def land(connection: Connection) -> Connection:
        await release.wait()
        refreshed = await refresh(connection)
        landed.set()
        return refreshed

    async def slow_refresh(connection: Connection) -> Connection:
        settings.CONNECTION_REFRESH_SECONDS = 3600  # this refresh is the only one
        refreshing.set()
        # Its writes are on their way to DynamoDB: cancelling the task that
        # sent them does not stop them landing.
        return await asyncio.shield(land(connection))

    monkeypatch.setattr(services, "refresh_connection", slow_refresh)
    socket = await connect(issuer.token("refreshed-reaped"))
    await asyncio.wait_for(refreshing.wait(), 5)
    [item] = connection_items("refreshed-reaped")
    record = Connection(
        item["connectionId"], "refreshed-reaped", item["connectedAt"], int(item["ttl"]), owner=item["owner"]
    )

    assert await reaping.reap([record], storage.delete_owned_connection, now=int(time.time())) == 1
    # The socket has taken the reaped event: it left its user's group.
    await eventually(lambda: delivery.user_group("refreshed-reaped") not in hub().members)
    release.set()
    await asyncio.wait_for(landed.wait(), 5)
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4408}
    assert connection_items("refreshed-reaped") == []
    assert raw_items(f"CONNECTION#{record.connection_id}") == []
    assert await storage.online_users(["refreshed-reaped"], now=int(time.time())) == set()
