"""The data plane: every DynamoDB request of a request path, sent from the
event loop by aiodynamo over one aiohttp session per loop (SigV4, the
standard credentials chain, retries of throttling and 5xx answers with
jittered backoff). No thread hop, no GIL hand-off per call.

This is the only module that sees the client library: it turns a failed
condition into ConditionFailed and every other failure into
StorageUnavailable. Requests keep DynamoDB's own JSON shapes (expressions,
typed attribute values), so what is sent reads like the AWS documentation.

Sync callers (management commands, the admin) go through run_sync, which
gives the call a session of its own and closes it after."""

import asyncio
import contextlib
import contextvars
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import aiohttp
from aiodynamo.client import Client
from aiodynamo.credentials import Credentials
from aiodynamo.errors import ConditionalCheckFailed, ValidationException
from aiodynamo.http.aiohttp import AIOHTTP
from aiodynamo.models import DecorelatedJitterRetry
from asgiref.sync import async_to_sync
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from django.conf import settings
from yarl import URL

from chat import keys, metrics
from chat.errors import StorageUnavailable
from chat.storage import schema

log = logging.getLogger("chat.storage")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
BATCH_GET_SIZE = 100
BATCH_WRITE_SIZE = 25
# Calls made for the items a batch call leaves unprocessed (throttling).
BATCH_ATTEMPTS = 8


class ConditionFailed(Exception):
    """A write's ConditionExpression did not hold; nothing was written."""


class ItemRejected(StorageUnavailable):
    """The endpoint refused the request as malformed (say, an item over the
    size limit): retrying cannot help."""


@dataclass
class Plane:
    """One event loop's session and client, and what rides on them (the
    group commit of chat.storage.batching)."""

    session: aiohttp.ClientSession
    client: Client
    generation: int
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        """Finish what rides on the plane (its writes use the session), then
        close the session."""
        for extra in list(self.extras.values()):
            await extra.close()
        await self.session.close()


_planes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Plane]" = weakref.WeakKeyDictionary()
# Bumped by reset(): planes of an older generation are closed on next use.
_generation = 0
# Closings under way (asyncio keeps only weak references to tasks).
_closing: set[asyncio.Task[None]] = set()
_scoped: contextvars.ContextVar[Plane | None] = contextvars.ContextVar("chat_storage_plane", default=None)
# When the request under way must have its answer (time.monotonic()).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("chat_storage_deadline", default=None)


def _build() -> Plane:
    # An attempt that has not finished by connect + read timeout is given up
    # (and retried), whatever it was waiting for: no request hangs.
    timeout = aiohttp.ClientTimeout(
        total=settings.DYNAMODB_CONNECT_TIMEOUT_SECONDS + settings.DYNAMODB_READ_TIMEOUT_SECONDS,
        connect=settings.DYNAMODB_CONNECT_TIMEOUT_SECONDS,
        sock_read=settings.DYNAMODB_READ_TIMEOUT_SECONDS,
    )
    connector = aiohttp.TCPConnector(limit=settings.DYNAMODB_MAX_CONNECTIONS, ttl_dns_cache=300)
    session = aiohttp.ClientSession(timeout=timeout, connector=connector)
    endpoint = settings.DYNAMODB_ENDPOINT_URL
    client = Client(
        AIOHTTP(session),
        Credentials.auto(),
        settings.AWS_REGION,
        URL(endpoint) if endpoint else None,
        # Numbers come back as Decimal (exact, as boto3 gives them); the
        # entity modules turn them into int. aiodynamo's default is float.
        numeric_type=Decimal,
        throttle_config=DecorelatedJitterRetry(
            base_delay_secs=0.05, max_delay_secs=1, time_limit_secs=settings.DYNAMODB_RETRY_SECONDS
        ),
    )
    return Plane(session, client, _generation)


def plane() -> Plane:
    """The running loop's plane (built on first use), or the one run_sync set."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    loop = asyncio.get_running_loop()
    current = _planes.get(loop)
    if current is not None and current.generation != _generation:
        # Its calls under way finish on it; new ones go to the new plane.
        closing = loop.create_task(current.close())
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
        current = None
    if current is None or current.session.closed:
        current = _planes[loop] = _build()
    return current


async def close() -> None:
    """Close the running loop's plane (at shutdown, or when a test's loop
    ends). It stays the loop's plane while what rides on it finishes."""
    loop = asyncio.get_running_loop()
    current = _planes.get(loop)
    if current is not None:
        await current.close()
        if _planes.get(loop) is current:
            del _planes[loop]


def reset() -> None:
    """Have every loop build a new plane from current settings on its next
    call (closing its old one)."""
    global _generation
    _generation += 1


def run_sync(fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run an async storage or service function from sync code, on a plane
    of its own that is closed afterwards (the server's stays untouched even
    when async_to_sync lands on the server's loop, as from the admin)."""

    async def scoped() -> R:
        own = _build()
        token = _scoped.set(own)
        try:
            return await fn(*args, **kwargs)
        finally:
            _scoped.reset(token)
            await own.close()

    return async_to_sync(scoped)()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every storage call made inside the block (and in the tasks it starts)
    gives up with StorageUnavailable once `seconds` have passed, retries
    included: a request path answers within its budget however slow
    DynamoDB is. A deadline inside another keeps the earlier of the two."""
    at = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(at, outer))
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    """Seconds until the current request's deadline, or None without one."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()


def spawn(coroutine: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
    """Start a task that serves more than the request that starts it (a
    group commit, a coalescing writer, a best-effort cleanup): it runs
    without that request's deadline."""
    context = contextvars.copy_context()
    context.run(_deadline.set, None)
    return asyncio.get_running_loop().create_task(coroutine, context=context)


# --- (de)serialisation ------------------------------------------------------------


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments (:name -> value)."""
    return {f":{name}": _serializer.serialize(value) for name, value in named.items()}


def key_id(key: keys.Key | dict[str, Any]) -> tuple[str, str]:
    return key["PK"], key["SK"]


# --- requests --------------------------------------------------------------------


async def call(operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One request (with the client's retries, within the request's
    deadline if one is set). Raises ConditionFailed, ItemRejected or
    StorageUnavailable."""
    started = time.monotonic()
    left = time_left()
    try:
        if left is None:
            return await plane().client.send_request(action=operation, payload=payload)
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        async with asyncio.timeout(left):
            return await plane().client.send_request(action=operation, payload=payload)
    except ConditionalCheckFailed:
        raise ConditionFailed() from None
    except ValidationException as exc:
        metrics.STORAGE_ERRORS.labels(operation).inc()
        log.error("DynamoDB %s refused: %s", operation, exc)
        raise ItemRejected("The item could not be stored") from exc
    except Exception as exc:  # transport, throttling past the budget, a closed session, a garbled answer
        metrics.STORAGE_ERRORS.labels(operation).inc()
        log.error("DynamoDB %s failed after %.1f s: %r", operation, time.monotonic() - started, exc)
        raise StorageUnavailable() from exc
    finally:
        metrics.STORAGE_SECONDS.labels(operation).observe(time.monotonic() - started)


async def retry_unprocessed(send: Callable[[T], Awaitable[T]], pending: T, *, what: str) -> None:
    """Call send(pending) until it leaves nothing unprocessed, with
    exponential backoff and full jitter between calls (the one retry loop of
    batch calls; single requests are retried by the client). Raises
    StorageUnavailable if items are still left after BATCH_ATTEMPTS."""
    for attempt in range(BATCH_ATTEMPTS):
        pending = await send(pending)
        if not pending:
            return
        await asyncio.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
    raise StorageUnavailable(f"Storage is throttling {what}, try again")


async def get(key: keys.Key) -> dict[str, Any] | None:
    response = await call("GetItem", {"TableName": schema.table(), "Key": to_item(key), "ConsistentRead": True})
    return from_item(response.get("Item", {})) or None


async def put(item: dict[str, Any], **conditional: Any) -> None:
    await call("PutItem", {"TableName": schema.table(), "Item": to_item(item), **conditional})


async def update(key: keys.Key, **request: Any) -> dict[str, Any]:
    """UpdateItem; returns the attributes asked for with ReturnValues."""
    response = await call("UpdateItem", {"TableName": schema.table(), "Key": to_item(key), **request})
    return from_item(response.get("Attributes", {}))


async def delete(key: keys.Key, **conditional: Any) -> dict[str, Any]:
    """DeleteItem; returns the attributes asked for with ReturnValues."""
    response = await call("DeleteItem", {"TableName": schema.table(), "Key": to_item(key), **conditional})
    return from_item(response.get("Attributes", {}))


async def query(**request: Any) -> list[dict[str, Any]]:
    """Every item a Query matches, across pages."""
    found: list[dict[str, Any]] = []
    payload = {"TableName": schema.table(), **request}
    while True:
        response = await call("Query", payload)
        found.extend(from_item(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return found
        payload = {**payload, "ExclusiveStartKey": response["LastEvaluatedKey"]}


async def query_page(**request: Any) -> list[dict[str, Any]]:
    """One page of a Query (use Limit)."""
    response = await call("Query", {"TableName": schema.table(), **request})
    return [from_item(item) for item in response.get("Items", [])]


async def batch_get(wanted: list[keys.Key]) -> dict[tuple[str, str], dict[str, Any]]:
    """Consistent reads of many items, 100 keys a request; returns the items
    found, by key_id."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    table = schema.table()

    async def send(pending: dict[str, Any]) -> dict[str, Any]:
        response = await call("BatchGetItem", {"RequestItems": pending})
        for item in response.get("Responses", {}).get(table, []):
            item_values = from_item(item)
            found[key_id(item_values)] = item_values
        return response.get("UnprocessedKeys") or {}

    unique = list({key_id(key): key for key in wanted}.values())
    for start in range(0, len(unique), BATCH_GET_SIZE):
        chunk = [to_item(key) for key in unique[start : start + BATCH_GET_SIZE]]
        await retry_unprocessed(send, {table: {"Keys": chunk, "ConsistentRead": True}}, what="reads")
    return found


async def batch_write(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One BatchWriteItem of up to 25 write requests; returns those left
    unprocessed."""
    table = schema.table()
    response = await call("BatchWriteItem", {"RequestItems": {table: requests}})
    return list(response.get("UnprocessedItems", {}).get(table, []))


async def batch_put(items: list[dict[str, Any]]) -> None:
    """Store items unconditionally, 25 a request, retrying what is throttled."""
    for start in range(0, len(items), BATCH_WRITE_SIZE):
        requests = [{"PutRequest": {"Item": to_item(item)}} for item in items[start : start + BATCH_WRITE_SIZE]]
        await retry_unprocessed(batch_write, requests, what="writes")
