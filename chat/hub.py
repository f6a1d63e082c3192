"""Per-process fan-out.

Each server process subscribes once to every group (room or user) that any
of its sockets needs, with a single channel of its own. A group message then
costs the channel layer one entry per process instead of one per socket, and
the process hands the already-encoded frame to each local socket directly,
without a queue hop and a consumer dispatch per recipient.

Frames (`chat.frame` events, or several in one `chat.frames`) are written to
the sockets here; any other event is posted to each member consumer's own
queue (a local one, not the channel layer's), so that it is handled in that
consumer's order like any other message. An event that ends a
membership (`leaves`) ends it here first, at its place in the stream."""

import asyncio
import logging
import weakref
from collections import defaultdict
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from chat.errors import DeliveryUnavailable

log = logging.getLogger(__name__)


class Member(Protocol):
    channel_name: str

    async def deliver_frame(self, event: dict[str, Any]) -> None: ...

    def post(self, event: dict[str, Any]) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.members: dict[str, set[Member]] = defaultdict(set)
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def _start(self) -> None:
        if self.channel is None:
            self.channel = await self.layer.new_channel()
            self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._renew())]

    async def subscribe(self, member: Member, group: str) -> None:
        """Deliver the group's frames to member. Raises DeliveryUnavailable
        when the channel layer cannot be reached."""
        async with self._lock:
            if group not in self.members:
                try:
                    await self._start()
                    await self.layer.group_add(group, self.channel)
                except Exception as exc:  # Redis refused, timed out, or closed the connection
                    raise DeliveryUnavailable() from exc
            self.members[group].add(member)

    async def unsubscribe(self, member: Member, group: str) -> None:
        async with self._lock:
            local = self.members.get(group)
            if local is None or member not in local:
                return
            local.discard(member)
            if not local:
                del self.members[group]
                try:
                    await self.layer.group_discard(group, self.channel)
                except Exception:
                    log.warning("could not leave group %s; the channel layer expires it", group)

    async def close(self) -> None:
        """Stop receiving and leave every group (for an orderly shutdown)."""
        self._closing = True
        for task in self._tasks:
            # A cancellation can be swallowed inside the Redis client (its
            # read timeout races it), so insist until the task is over.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.5)
        for group in list(self.members):
            try:
                await self.layer.group_discard(group, self.channel)
            except Exception:
                log.warning("could not leave group %s; it expires", group)
        self.members.clear()
        _hubs.pop(asyncio.get_running_loop(), None)

    async def _receive(self) -> None:
        while not self._closing:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                if self._closing:
                    return
                log.exception("hub receive failed; retrying")
                await asyncio.sleep(1)
                continue
            await self._dispatch(event)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        for member in list(self.members.get(event.get("group", ""), ())):
            try:
                if event["type"] == "chat.frame":
                    await member.deliver_frame(event)
                    continue
                if event["type"] == "chat.frames":
                    for frame in event["frames"]:
                        await member.deliver_frame(frame)
                    continue
                if "leaves" in event:
                    # The member stops getting that group's frames now, not
                    # when its consumer gets round to the event: frames sent
                    # after it (say, "X left") must not reach it.
                    await self.unsubscribe(member, event["leaves"])
                member.post(event)
            except Exception:
                log.exception("delivery of %s to %s failed", event["type"], member.channel_name)

    async def _renew(self) -> None:
        """Re-add this process's memberships before the layer expires them."""
        while True:
            await asyncio.sleep(max(settings.CHANNEL_GROUP_EXPIRY // 4, 1))
            for group in list(self.members):
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception:
                    log.exception("could not renew group %s", group)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]" = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = Hub()
    return _hubs[loop]
