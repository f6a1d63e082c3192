"""This process's part in clearing the connections of processes that die
without closing them (SIGKILL, a lost host): a heartbeat and a reaper.

A server process (one event loop) has an owner id, which every connection
it registers records. From its first connection on, it writes a heartbeat
every SERVER_HEARTBEAT_SECONDS saying it is alive for
SERVER_DEAD_AFTER_SECONDS more, and every SERVER_REAP_SECONDS (jittered, so
processes started together do not all look at once) it reaps the
connections of processes whose heartbeat expired (chat.services.reaping).

A process that finds its own heartbeat claimed stalled so long that it was
taken for dead: its connections are being reaped (and closed with 4408, so
their clients reconnect), and it carries on under a new owner id."""

import asyncio
import logging
import random
import time
import uuid

from django.conf import settings

from chat import storage
from chat.services import reaping
from chat.tasks import PerLoop, stop

log = logging.getLogger(__name__)
# The reaper waits SERVER_REAP_SECONDS times a factor within 1 +- this.
REAP_JITTER = 0.2


def _expires_at() -> int:
    return int(time.time()) + settings.SERVER_DEAD_AFTER_SECONDS


class Liveness:
    """One server process's (event loop's) owner id, heartbeat and reaper."""

    def __init__(self) -> None:
        self.owner = ""  # none until the first connection
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def current_owner(self) -> str:
        """The owner id for a new connection. The first call writes the
        first heartbeat (before any connection names the owner, so none is
        left without one; raises StorageUnavailable if it cannot) and starts
        the heartbeat and the reaper."""
        async with self._lock:
            if not self.owner:
                self.owner = await self._new_owner()
                # Not under the deadline of the request that starts them.
                self._tasks = [storage.spawn(self._beat()), storage.spawn(self._reap())]
            return self.owner

    async def _new_owner(self) -> str:
        owner = uuid.uuid4().hex
        await storage.start_heartbeat(owner, expires_at=_expires_at())
        return owner

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.SERVER_HEARTBEAT_SECONDS)
            try:
                if not await storage.beat(self.owner, expires_at=_expires_at()):
                    log.error("server %s was taken for dead and its connections reaped; going on anew", self.owner)
                    self.owner = await self._new_owner()
            except Exception:
                log.exception("heartbeat of server %s not written", self.owner)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(settings.SERVER_REAP_SECONDS * random.uniform(1 - REAP_JITTER, 1 + REAP_JITTER))
            try:
                reaped = await reaping.reap_dead_servers(reaper=self.owner)
            except Exception:
                log.exception("reaping the connections of dead servers failed; trying again later")
                continue
            if reaped:
                log.info("reaped %d connection(s) of dead servers", reaped)

    async def close(self) -> None:
        """Stop the heartbeat and the reaper (at shutdown, or when a test's
        loop ends). The heartbeat item is left to expire, so whatever
        connection of this process is still registered gets reaped."""
        await stop(*self._tasks)
        _processes.forget()


_processes = PerLoop(Liveness)


def liveness() -> Liveness:
    """The running event loop's (the server process's) liveness."""
    return _processes.get()
