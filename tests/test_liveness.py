"""Server processes' heartbeats, and the reaping of the connections of
processes that died (chat.services.liveness, chat.services.reaping)."""

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from chat import delivery, domain, keys, services, storage
from chat.services import liveness, reaping
from devtools.servers import ROOT
from tests.helpers import GroupListener, connection_items, eventually, new_room, raw_items

pytestmark = pytest.mark.django_db(transaction=True)


def heartbeat_owners() -> list[str]:
    return [item["owner"] for item in raw_items(keys.SERVERS_PK)]


async def left_by(owner: str, user_id: str, connection_id: str, *, alive_for: int | None) -> domain.Connection:
    """A connection registered by server process owner, whose heartbeat
    runs out alive_for seconds from now (negative: it has died; None: it
    was written already)."""
    now = int(time.time())
    if alive_for is not None:
        await storage.start_heartbeat(owner, expires_at=now + alive_for)
    connection = domain.Connection(connection_id, user_id, "2026-01-01T00:00:00.000Z", now + 3600, owner=owner)
    await storage.put_connection(connection)
    await storage.set_online(connection, now=now)
    return connection


async def test_connections_record_the_server_process_that_holds_them(connect, issuer):
    await connect(issuer.token("owned"))
    owner = liveness.liveness().owner
    [user_connection] = connection_items("owned")
    [connection] = raw_items(f"CONNECTION#{user_connection['connectionId']}")
    assert user_connection["owner"] == connection["owner"] == owner
    assert (connection["GSI1PK"], connection["GSI1SK"]) == (f"SERVERCONNECTIONS#{owner}", connection["connectionId"])
    [heartbeat] = [item for item in raw_items(keys.SERVERS_PK) if item["owner"] == owner]
    assert heartbeat["expiresAt"] > time.time() + settings.SERVER_DEAD_AFTER_SECONDS - 5


async def test_a_dead_servers_connections_are_reaped_and_room_mates_hear_it(connect, issuer):
    await new_room("ghost-user", "ghost-watcher")
    watcher = await connect(issuer.token("ghost-watcher"))
    ghost = await left_by("dead-server-1", "ghost-user", "ghost-conn", alive_for=-1)

    assert await services.reap_dead_servers(reaper="test-reaper") == 1
    assert connection_items("ghost-user") == [] and raw_items("CONNECTION#ghost-conn") == []
    assert await storage.online_users(["ghost-user"], now=int(time.time())) == set()
    assert "dead-server-1" not in heartbeat_owners()
    assert await watcher.receive_json_from(timeout=5) == {
        "type": "presence",
        "data": {"userId": "ghost-user", "online": False},
    }
    assert await services.reap_dead_servers(reaper="test-reaper") == 0  # nothing left of it
    assert (await storage.server_connections(ghost.owner)) == []


async def test_a_live_servers_connections_are_never_reaped():
    live = await left_by("live-server", "live-user", "live-conn", alive_for=60)
    mine = await left_by("reaping-server", "own-user", "own-conn", alive_for=-1)

    assert await services.reap_dead_servers(reaper="reaping-server") == 0
    assert [item["SK"] for item in connection_items("live-user")] == ["CONNECTION#live-conn"]
    assert [item["SK"] for item in connection_items("own-user")] == ["CONNECTION#own-conn"]
    assert await storage.online_users(["live-user", "own-user"], now=int(time.time())) == {"live-user", "own-user"}
    assert not await storage.claim_dead_server(live.owner, reaper="x", now=int(time.time()), lease_until=2**40)
    assert (
        await storage.delete_owned_connection(domain.Connection("live-conn", "live-user", "t", 0, owner=mine.owner))
        is False
    )
    assert len(raw_items("CONNECTION#live-conn")) == 1


async def test_one_reaper_at_a_time_holds_a_dead_server_until_its_lease_ends():
    now = int(time.time())
    await storage.start_heartbeat("contested", expires_at=now - 1)
    assert await storage.claim_dead_server("contested", reaper="first", now=now, lease_until=now + 60)
    assert not await storage.claim_dead_server("contested", reaper="second", now=now, lease_until=now + 60)
    assert "contested" not in [dead.owner for dead in await storage.dead_servers(now=now)]
    later = now + 61  # the first reaper died while holding it
    assert "contested" in [dead.owner for dead in await storage.dead_servers(now=later)]
    assert await storage.claim_dead_server("contested", reaper="second", now=later, lease_until=later + 60)
    await storage.delete_heartbeat("contested", reaper="first")  # too late: not its any more
    assert "contested" in heartbeat_owners()
    await storage.delete_heartbeat("contested", reaper="second")
    assert "contested" not in heartbeat_owners()


async def test_two_reapers_at_once_reap_and_announce_each_connection_once(monkeypatch):
    announced = []
    monkeypatch.setattr(delivery, "announce_presence", lambda user_id, rooms, online: announced.append(user_id))
    ghosts = [await left_by("dead-server-2", "twice-0", "twice-conn-0", alive_for=-1)]
    ghosts += [await left_by("dead-server-2", f"twice-{n}", f"twice-conn-{n}", alive_for=None) for n in range(1, 5)]
    connections = await storage.server_connections("dead-server-2")
    assert sorted(c.connection_id for c in connections) == sorted(g.connection_id for g in ghosts)
    counts = await asyncio.gather(
        *(reaping.reap(connections, storage.delete_owned_connection, now=int(time.time())) for _ in range(2))
    )
    assert sum(counts) == 5 and sorted(announced) == sorted(g.user_id for g in ghosts)


async def test_a_server_taken_for_dead_stops_beating_and_goes_on_as_a_new_one(settings):
    settings.SERVER_HEARTBEAT_SECONDS = 0.05
    process = liveness.liveness()
    try:
        stalled = await process.current_owner()
        now = int(time.time()) + 1000  # as a peer sees it once this process stalled past its expiry
        assert await storage.claim_dead_server(stalled, reaper="peer", now=now, lease_until=now + 60)
        assert not await storage.beat(stalled, expires_at=now + 60)
        renewed = await eventually(lambda: process.owner != stalled and process.owner)
        assert await process.current_owner() == renewed and renewed in heartbeat_owners()
        await storage.delete_heartbeat(stalled, reaper="peer")
        assert not await storage.beat(stalled, expires_at=now + 60)  # a reaped heartbeat is not written back
        assert stalled not in heartbeat_owners()
    finally:
        await process.close()


def test_reap_connections_command_also_reaps_dead_servers():
    services.reap_expired_connections_sync()  # whatever earlier tests left to expire
    storage.run_sync(left_by, "dead-server-3", "cron-user", "cron-conn", alive_for=-1)
    assert services.reap_expired_connections_sync() == 1
    assert connection_items("cron-user") == [] and "dead-server-3" not in heartbeat_owners()


def test_reaping_a_dead_server_announces_its_users_offline_from_a_command():
    room = services.create_room_sync(participant_ids=["cron-ghost", "cron-mate"])
    storage.run_sync(left_by, "dead-server-4", "cron-ghost", "cron-ghost-conn", alive_for=-1)
    with GroupListener(delivery.room_group(room.room_id)) as listener:
        services.reap_expired_connections_sync()
    frames = [json.loads(frame["text"]) for frame in listener.message["frames"]]
    assert {"type": "presence", "data": {"userId": "cron-ghost", "online": False}} in frames


def default_settings(**env: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process, without this one's overrides."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("SERVER_")}
    probe = (
        "from django.conf import settings as s; "
        "print(s.SERVER_HEARTBEAT_SECONDS, s.SERVER_DEAD_AFTER_SECONDS, s.SERVER_REAP_SECONDS)"
    )
    environment = {**inherited, "DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "chatproject.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {probe}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_by_default_a_dead_servers_connections_go_within_two_minutes():
    result = default_settings()
    assert result.returncode == 0, result.stderr
    heartbeat, dead_after, reap_every = map(int, result.stdout.split())
    # Dead after dead_after from its last heartbeat at the latest, noticed
    # within one jittered reaper round, reaped well within the work budget.
    work = 30
    assert heartbeat + dead_after + reap_every * (1 + liveness.REAP_JITTER) + work < 120


def test_a_heartbeat_that_could_look_dead_when_late_is_refused():
    result = default_settings(SERVER_HEARTBEAT_SECONDS="30", SERVER_DEAD_AFTER_SECONDS="45")
    assert result.returncode != 0 and "SERVER_DEAD_AFTER_SECONDS at least twice" in result.stderr
