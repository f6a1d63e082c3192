"""The reference's LASTMESSAGE item, written again, off the ack path.

The room list reads the preview from METADATA, where the write that takes a
message's seq puts it. LASTMESSAGE is for readers of the reference layout:
after a message is stored, its preview is noted here, and a task per event
loop writes the newest noted preview of each room, so under load a room
gets one write per round however many messages it had. The write is
conditional on `lastSeq`, so the item never moves back to an older message,
whichever process writes last. A preview lost (storage down, a process
stopping) leaves the item behind until the room's next message."""
import asyncio
import logging

from chat import keys
from chat.errors import StorageUnavailable
from chat.storage import dynamo
from chat.storage.dynamo import ConditionFailed
from chat.storage.messages import PREVIEW_LENGTH, Message

log = logging.getLogger("chat.storage")


class LastMessageWriter:
    def __init__(self) -> None:
        self._newest: dict[str, Message] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, message: Message) -> None:
        current = self._newest.get(message.room_id)
        if message.seq is None or (current is not None and current.seq is not None and current.seq >= message.seq):
            return
        self._newest[message.room_id] = message
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Write what is noted (at shutdown)."""
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while self._newest:
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
        except StorageUnavailable:
            log.warning("LASTMESSAGE of room %s not written (seq %s)", message.room_id, message.seq)


def note_last_message(message: Message) -> None:
    """Have LASTMESSAGE of the message's room show it, soon, unless a newer
    one does. Returns at once."""
    extras = dynamo.plane().extras
    if "previews" not in extras:
        extras["previews"] = LastMessageWriter()
    extras["previews"].note(message)
