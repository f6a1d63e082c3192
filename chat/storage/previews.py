"""The reference's LASTMESSAGE item, written again, off the ack path.

The room list reads the preview from METADATA, where the write that takes a
message's seq puts it. LASTMESSAGE is for readers of the reference layout:
after a message is stored, its preview is noted here, and a task per event
loop writes, every LASTMESSAGE_WINDOW_MS, the newest noted preview of each
room, so a room gets at most one write per window however many messages it
had (the item lags that much behind METADATA). The write is
conditional on `lastSeq`, so the item never moves back to an older message,
whichever process writes last. A preview lost (storage down, a process
stopping) leaves the item behind until the room's next message."""

import asyncio
import logging

from django.conf import settings

from chat import keys
from chat.domain import Message
from chat.storage import dynamo
from chat.storage.dynamo import ConditionFailed
from chat.storage.messages import PREVIEW_LENGTH

log = logging.getLogger("chat.storage")


class LastMessageWriter:
    def __init__(self) -> None:
        self._newest: dict[str, Message] = {}
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # set at close: write without waiting

    def note(self, message: Message) -> None:
        current = self._newest.get(message.room_id)
        if message.seq is None or (current is not None and current.seq is not None and current.seq >= message.seq):
            return
        self._newest[message.room_id] = message
        if self._task is None or self._task.done():
            self._task = dynamo.spawn(self._run())

    async def close(self) -> None:
        """Write what is noted now (at shutdown)."""
        self._hurry.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while self._newest:
            try:
                await asyncio.wait_for(self._hurry.wait(), settings.LASTMESSAGE_WINDOW_MS / 1000)
            except TimeoutError:
                pass  # the window is over
            noted, self._newest = self._newest, {}
            await asyncio.gather(*(self._write(message) for message in noted.values()))

    async def _write(self, message: Message) -> None:
        try:
            await dynamo.update(
                keys.last_message(message.room_id),
                UpdateExpression="SET lastMessage = :text, lastMessageAt = :at, lastSeq = :seq",
                ConditionExpression="attribute_not_exists(lastSeq) OR lastSeq < :seq",
                ExpressionAttributeValues=dynamo.values(
                    text=message.content[:PREVIEW_LENGTH], at=message.created_at, seq=message.seq
                ),
            )
        except ConditionFailed:
            pass  # a newer message's preview is there already
        except Exception:
            log.warning("LASTMESSAGE of room %s not written (seq %s)", message.room_id, message.seq, exc_info=True)


def note_last_message(message: Message) -> None:
    """Have LASTMESSAGE of the message's room show it, soon, unless a newer
    one does. Returns at once."""
    extras = dynamo.plane().extras
    if "previews" not in extras:
        extras["previews"] = LastMessageWriter()
    extras["previews"].note(message)
