"""Group commit for unconditional writes (messages, connection records).

A botocore call costs about a millisecond of CPU in this process and about
as much in the server, whatever its size; BatchWriteItem carries 25 items for
barely more. Writers here hand their item to a few flusher threads and wait:
a flusher takes whatever is queued (up to 25 items) and writes it in one
call, so at low load an item goes alone, and under load items share calls.

Only puts and deletes that need no condition may come here: BatchWriteItem
has none. No attempt to write an item starts later than WRITE_DEADLINE
seconds after it was queued (its writer gets StorageUnavailable instead), so
a write is over within that plus one call with its retries: under the lease
that keeps a retried idempotent send from storing its message twice."""
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from botocore.exceptions import ClientError

from chat.errors import StorageUnavailable
from chat.storage import base

log = logging.getLogger("chat.storage")
MAX_ATTEMPTS = 8
WRITE_DEADLINE = 8.0


class _Pending:
    """One write request of BatchWriteItem (a PutRequest or DeleteRequest)."""

    __slots__ = ("table", "request", "key", "future", "deadline")

    def __init__(self, table: str, request: dict[str, Any]) -> None:
        self.table, self.request, self.future = table, request, Future()
        self.key = (table, *_key_of(request))
        self.deadline = time.monotonic() + WRITE_DEADLINE

    def expire(self) -> bool:
        """Whether this write must not start: over already, or too late
        (its writer is then told so)."""
        if self.future.done():
            return True
        if time.monotonic() < self.deadline:
            return False
        self.future.set_exception(StorageUnavailable("Storage is too slow, try again"))
        return True


def _key_of(request: dict[str, Any]) -> tuple[str, str]:
    fields = request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"]
    return fields["PK"]["S"], fields["SK"]["S"]


class WriteBatcher:
    def __init__(self, flushers: int = base.WRITE_FLUSHERS) -> None:
        self._changed = threading.Condition()
        self._waiting: list[_Pending] = []
        self._in_flight: set[tuple[str, str, str]] = set()
        self._started = False
        self._flushers = flushers

    def write(self, requests: list[dict[str, Any]]) -> None:
        """Apply the write requests (each in some batch; writes of one key
        land in the order given) and return once all are done. Raises
        StorageUnavailable if any was not."""
        pending = [_Pending(base.table(), request) for request in requests]
        with self._changed:
            self._start()
            self._waiting.extend(pending)
            self._changed.notify()
        for entry in pending:
            entry.future.result()

    def _start(self) -> None:
        if not self._started:
            for number in range(self._flushers):
                threading.Thread(target=self._run, name=f"chat-batch-{number}", daemon=True).start()
            self._started = True

    def _take(self) -> list[_Pending]:
        """Wait for, then take, up to a batch of queued items of one table,
        oldest first. BatchWriteItem refuses a key twice, and two flushers
        could land one key's writes out of order, so an item whose key is in
        this batch or in flight waits for a later batch."""
        with self._changed:
            while True:
                batch: list[_Pending] = []
                keys = set(self._in_flight)
                rest: list[_Pending] = []
                for entry in self._waiting:
                    if entry.expire():
                        continue
                    if len(batch) < base.BATCH_WRITE_SIZE and entry.key not in keys and entry.table == self._waiting[0].table:
                        batch.append(entry)
                    else:
                        rest.append(entry)
                    keys.add(entry.key)
                self._waiting = rest
                if batch:
                    self._in_flight.update(entry.key for entry in batch)
                    return batch
                self._changed.wait()

    def _finish(self, batch: list[_Pending]) -> None:
        with self._changed:
            self._in_flight.difference_update(entry.key for entry in batch)
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            batch = self._take()
            try:
                self._write(batch)
            except Exception as exc:  # every waiter must hear, whatever went wrong
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(exc if isinstance(exc, StorageUnavailable) else StorageUnavailable())
            finally:
                self._finish(batch)

    def _write(self, batch: list[_Pending]) -> None:
        by_key = {entry.key: entry for entry in batch}
        table = batch[0].table
        requests = [entry.request for entry in batch]
        for attempt in range(MAX_ATTEMPTS):
            requests = [request for request in requests if not by_key[(table, *_key_of(request))].expire()]
            if not requests:
                return
            try:
                with base.guard("BatchWriteItem", expected=frozenset({"ValidationException"})):
                    response = base.client().batch_write_item(RequestItems={table: requests})
            except ClientError:
                # One bad item fails the whole batch: write them one by one so
                # only that one's writer hears about it.
                self._write_singly(batch)
                return
            requests = response.get("UnprocessedItems", {}).get(table, [])
            unprocessed = {(table, *_key_of(request)) for request in requests}
            for key, entry in by_key.items():
                if key not in unprocessed and not entry.future.done():
                    entry.future.set_result(None)
            if not requests:
                return
            time.sleep(0.05 * 2**attempt)
        raise StorageUnavailable("Storage is throttling writes, try again")

    def _write_singly(self, batch: list[_Pending]) -> None:
        for entry in batch:
            if entry.expire():
                continue
            try:
                if "PutRequest" in entry.request:
                    with base.guard("PutItem"):
                        base.client().put_item(TableName=entry.table, **entry.request["PutRequest"])
                else:
                    with base.guard("DeleteItem"):
                        base.client().delete_item(TableName=entry.table, **entry.request["DeleteRequest"])
            except (ClientError, StorageUnavailable) as exc:
                log.error("item %s/%s not written: %s", entry.key[1], entry.key[2], exc)
                entry.future.set_exception(StorageUnavailable("The item could not be stored"))
            else:
                entry.future.set_result(None)


_batcher = WriteBatcher()


def put(*items: dict[str, Any]) -> None:
    """Store items, unconditionally, through the shared group commit."""
    _batcher.write([{"PutRequest": {"Item": base.to_item(item)}} for item in items])


def delete(*keys: dict[str, str]) -> None:
    """Delete items (missing ones are fine) through the shared group commit."""
    _batcher.write([{"DeleteRequest": {"Key": base.to_item(key)}} for key in keys])
