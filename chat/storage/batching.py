"""Group commit for unconditional writes (messages, connection records).

Every call costs a request's overhead in this process and in the endpoint,
whatever its size, and BatchWriteItem carries 25 items for barely more.
Writers here queue their items and wait: up to MAX_IN_FLIGHT batches are
written at once, each taking whatever is queued (up to 25 items), so at low
load an item goes alone at once, and under load items share calls.

Only puts and deletes that need no condition may come here: BatchWriteItem
has none. No attempt to write an item starts later than WRITE_DEADLINE
seconds after it was queued, nor after its writer's deadline (the writer
gets StorageUnavailable instead), so
a write is over within that plus one call with its retries: under the lease
that keeps a retried idempotent send from storing its message twice.

One batcher per event loop (it rides on chat.storage.dynamo's plane)."""

import asyncio
import logging
import time
from typing import Any

from chat.errors import StorageUnavailable
from chat.storage import dynamo, schema

log = logging.getLogger("chat.storage")
MAX_IN_FLIGHT = 4
WRITE_DEADLINE = 8.0


class _Pending:
    """One write request of BatchWriteItem (a PutRequest or DeleteRequest)."""

    __slots__ = ("deadline", "future", "key", "request")

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.key = _key_of(request)
        left = dynamo.time_left()
        self.deadline = time.monotonic() + (WRITE_DEADLINE if left is None else min(WRITE_DEADLINE, left))

    def expire(self) -> bool:
        """Whether this write must not start: over already, or too late
        (its writer is then told so)."""
        if self.future.done():
            return True
        if time.monotonic() < self.deadline:
            return False
        self.future.set_exception(StorageUnavailable("Storage is too slow, try again"))
        return True

    def fail(self, error: StorageUnavailable) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def succeed(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


def _key_of(request: dict[str, Any]) -> tuple[str, str]:
    fields = request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"]
    return fields["PK"]["S"], fields["SK"]["S"]


class WriteBatcher:
    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._waiting: list[_Pending] = []
        self._in_flight: set[tuple[str, str]] = set()
        self._writing: set[asyncio.Task[None]] = set()
        self._max_in_flight = max_in_flight

    async def write(self, requests: list[dict[str, Any]]) -> None:
        """Apply the write requests (each in some batch; writes of one key
        land in the order given) and return once all are done. Raises
        StorageUnavailable if any was not."""
        pending = [_Pending(request) for request in requests]
        self._waiting.extend(pending)
        self._pump()
        done = asyncio.gather(*(entry.future for entry in pending), return_exceptions=True)
        try:
            # A batch already sent is not waited for past the deadline (it
            # may still land, as after a timeout).
            outcomes = await asyncio.wait_for(asyncio.shield(done), dynamo.time_left())
        except TimeoutError:
            raise StorageUnavailable("Storage is too slow, try again") from None
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def close(self) -> None:
        """Wait until everything queued is written (at shutdown): a batch
        that ends starts the next."""
        while self._writing:
            await asyncio.wait(set(self._writing))

    def _pump(self) -> None:
        while len(self._writing) < self._max_in_flight:
            batch = self._take()
            if not batch:
                return
            task = dynamo.spawn(self._flush(batch))
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    def _take(self) -> list[_Pending]:
        """Up to a batch of queued items, oldest first. BatchWriteItem
        refuses a key twice, and two batches in flight could land one key's
        writes out of order, so an item whose key is in this batch or in
        flight waits for a later batch."""
        batch: list[_Pending] = []
        seen = set(self._in_flight)
        rest: list[_Pending] = []
        for entry in self._waiting:
            if entry.expire():
                continue
            if len(batch) < dynamo.BATCH_WRITE_SIZE and entry.key not in seen:
                batch.append(entry)
            else:
                rest.append(entry)
            seen.add(entry.key)
        self._waiting = rest
        self._in_flight.update(entry.key for entry in batch)
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            await self._write(batch)
        except StorageUnavailable as error:
            for entry in batch:
                entry.fail(error)
        except Exception:  # every waiter must hear, whatever went wrong
            log.exception("batch write failed")
            for entry in batch:
                entry.fail(StorageUnavailable())
        finally:
            self._in_flight.difference_update(entry.key for entry in batch)
            # This batch's slot is free now, not only once the task's
            # done-callback runs: batches ending together would otherwise
            # each find every slot taken, and leave what is queued with
            # nobody to write it and its writers waiting for ever.
            this = asyncio.current_task()
            if this is not None:
                self._writing.discard(this)
            self._pump()

    async def _write(self, batch: list[_Pending]) -> None:
        by_key = {entry.key: entry for entry in batch}

        async def send(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
            requests = [request for request in requests if not by_key[_key_of(request)].expire()]
            if not requests:
                return []
            unprocessed = await dynamo.batch_write(requests)
            left = {_key_of(request) for request in unprocessed}
            for key, entry in by_key.items():
                if key not in left:
                    entry.succeed()
            return unprocessed

        try:
            await dynamo.retry_unprocessed(send, [entry.request for entry in batch], what="writes")
        except dynamo.ItemRejected:
            # One bad item fails the whole batch: write them one by one so
            # only that one's writer hears about it.
            await self._write_singly(batch)

    async def _write_singly(self, batch: list[_Pending]) -> None:
        for entry in batch:
            if entry.expire():
                continue
            try:
                if "PutRequest" in entry.request:
                    item = entry.request["PutRequest"]["Item"]
                    await dynamo.call("PutItem", {"TableName": schema.table(), "Item": item})
                else:
                    key = entry.request["DeleteRequest"]["Key"]
                    await dynamo.call("DeleteItem", {"TableName": schema.table(), "Key": key})
            except StorageUnavailable as exc:
                log.error("item %s/%s not written: %s", *entry.key, exc)
                entry.fail(StorageUnavailable("The item could not be stored"))
            else:
                entry.succeed()


def batcher() -> WriteBatcher:
    """The running loop's batcher."""
    extras = dynamo.plane().extras
    if "batcher" not in extras:
        extras["batcher"] = WriteBatcher()
    writer: WriteBatcher = extras["batcher"]
    return writer


async def put(*items: dict[str, Any]) -> None:
    """Store items, unconditionally, through the loop's group commit."""
    await batcher().write([{"PutRequest": {"Item": dynamo.to_item(item)}} for item in items])


async def delete(*keys: dict[str, str]) -> None:
    """Delete items (missing ones are fine) through the loop's group commit."""
    await batcher().write([{"DeleteRequest": {"Key": dynamo.to_item(key)}} for key in keys])
