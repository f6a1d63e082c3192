"""Group names and sends over the channel layer.

Every connection subscribes (through its process's hub) to its user's group
(verification changes, new rooms, reaping) and to one group per room it
participates in. A room message is one group_send whatever the room size;
events carry their group so each process's hub knows whose they are."""

import asyncio
import hashlib
import logging

from channels.layers import get_channel_layer
from django.conf import settings

# events imports this module, so its types are named in quotes: they are
# looked up once both modules are loaded.
from chat import events, metrics
from chat.tasks import PerLoop

log = logging.getLogger(__name__)


def _group(kind: str, ident: str) -> str:
    # Group names allow only [A-Za-z0-9._-] and fewer than 100 characters;
    # user ids (any OIDC subject) and long room ids do not always fit.
    return f"{kind}.{hashlib.sha256(ident.encode()).hexdigest()[:40]}"


def room_group(room_id: str) -> str:
    return _group("room", room_id)


def user_group(user_id: str) -> str:
    return _group("user", user_id)


async def _send(group: str, event: "events.ChannelEvent") -> None:
    try:
        await get_channel_layer().group_send(group, {**event, "group": group})
    except Exception:
        metrics.PUBLISH_FAILURES.inc()
        raise


async def to_room(room_id: str, event: "events.ChannelEvent") -> None:
    await _send(room_group(room_id), event)


async def to_user(user_id: str, event: "events.ChannelEvent") -> None:
    await _send(user_group(user_id), event)


async def to_users_quietly(user_ids: list[str], event: "events.ChannelEvent") -> None:
    """Best-effort notification: the state it announces is already stored,
    so a channel-layer failure is logged, not raised."""
    for user_id in user_ids:
        try:
            await to_user(user_id, event)
        except Exception:
            log.exception("could not notify user %s of %s", user_id, event["type"])


class PresenceAnnouncer:
    """Presence changes of one process, coalesced: changes are gathered for
    PRESENCE_WINDOW_MS, then each room gets one event carrying its members'
    latest states (a user who came and went in the window is announced
    once, as they are now). A connect storm so costs about one event per
    room per window instead of one per room per connect."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, bool]] = {}
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # set by flush: send without waiting

    def announce(self, user_id: str, room_ids: list[str], *, online: bool) -> None:
        for room_id in room_ids:
            self._pending.setdefault(room_id, {})[user_id] = online
        if room_ids and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        """Send what is gathered now (for batch jobs, whose loop ends soon)."""
        self._hurry.set()
        if self._task is not None:
            await self._task
        self._hurry.clear()

    async def _run(self) -> None:
        # Changes announced while a round is being sent wait for the next.
        while self._pending:
            try:
                await asyncio.wait_for(self._hurry.wait(), settings.PRESENCE_WINDOW_MS / 1000)
            except TimeoutError:
                pass  # the window is over
            await self._send()

    async def _send(self) -> None:
        pending, self._pending = self._pending, {}
        for room_id, states in pending.items():
            frames = [(events.presence_frame(user_id, online), user_id) for user_id, online in states.items()]
            try:
                await to_room(room_id, events.deliver_many(frames))
            except Exception:
                log.exception("presence changes not announced in %s", room_id)


_announcers = PerLoop(PresenceAnnouncer)


def _announcer() -> PresenceAnnouncer:
    return _announcers.get()


def announce_presence(user_id: str, room_ids: list[str], *, online: bool) -> None:
    """Tell the rooms' members, soon, that user_id came online or went
    offline (their own connections are not told). Returns at once."""
    _announcer().announce(user_id, room_ids, online=online)


async def flush_presence() -> None:
    """Send the running loop's gathered presence changes now."""
    await _announcer().flush()
