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
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from chat import events
from chat.errors import DeliveryUnavailable
from chat.tasks import PerLoop, stop

log = logging.getLogger(__name__)


class Member(Protocol):
    channel_name: str

    async def deliver_frame(self, event: events.EncodedFrame) -> None: ...

    def post(self, event: events.ConsumerEvent) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        # The groups this process is in, with their local members.
        self.members: dict[str, set[Member]] = {}
        # Per group, the group_add or group_discard under way, if any: a
        # group's joins and leaves reach the layer in order, while other
        # groups' frames and joins go on.
        self._joining: dict[str, asyncio.Future[bool]] = {}
        self._leaving: dict[str, asyncio.Task[None]] = {}
        self._starting = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def _start(self) -> None:
        async with self._starting:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._renew())]

    async def subscribe(self, member: Member, group: str) -> None:
        """Deliver the group's frames to member. Subscribers to a group the
        process is joining wait for that one group_add. Raises
        DeliveryUnavailable when the channel layer cannot be reached."""
        while group not in self.members:
            joining = self._joining.get(group)
            if joining is None:
                await self._join(group, member)
                return
            if not await asyncio.shield(joining):
                raise DeliveryUnavailable()
        self.members[group].add(member)

    async def _join(self, group: str, member: Member) -> None:
        joining = self._joining[group] = asyncio.get_running_loop().create_future()
        joined = False
        try:
            if group in self._leaving:  # it would undo the group_add
                await asyncio.wait([self._leaving[group]])
            await self._start()
            await self.layer.group_add(group, self.channel)
            self.members[group] = {member}
            joined = True
        except Exception as exc:  # Redis refused, timed out, or closed the connection
            raise DeliveryUnavailable() from exc
        finally:
            del self._joining[group]
            joining.set_result(joined)

    async def unsubscribe(self, member: Member, group: str) -> None:
        """Stop delivering the group's frames to member, at once; returns
        once the process has left the group, if member was its last here."""
        leaving = self._remove(member, group)
        if leaving is not None:
            await asyncio.wait([leaving])

    def _remove(self, member: Member, group: str) -> "asyncio.Task[None] | None":
        """Stop delivering the group's frames to member. If it was the
        group's last member here, returns the task that leaves the group."""
        local = self.members.get(group)
        if local is None or member not in local:
            return None
        local.discard(member)
        if local:
            return None
        del self.members[group]
        leaving = self._leaving[group] = asyncio.create_task(self._discard(group))
        return leaving

    async def _discard(self, group: str) -> None:
        try:
            await self.layer.group_discard(group, self.channel)
        except Exception:
            log.warning("could not leave group %s; the channel layer expires it", group)
        finally:
            del self._leaving[group]

    async def close(self) -> None:
        """Stop receiving and leave every group (at shutdown, or when a
        test's event loop ends)."""
        self._closing = True
        await stop(*self._tasks)
        if self._leaving:
            await asyncio.wait(list(self._leaving.values()))
        for group in list(self.members):
            try:
                await self.layer.group_discard(group, self.channel)
            except Exception:
                log.warning("could not leave group %s; it expires", group)
        self.members.clear()
        _hubs.forget()

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

    async def _dispatch(self, event: events.ChannelEvent) -> None:
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
                    # after it (say, "X left") must not reach it. Leaving the
                    # group in the layer goes on without holding up frames.
                    self._remove(member, event["leaves"])
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


_hubs = PerLoop(Hub)


def hub() -> Hub:
    """The hub of the running event loop (one per server process)."""
    return _hubs.get()
