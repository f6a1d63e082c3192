"""Plumbing shared by the storage modules: the client, (de)serialisation,
error translation, and the few request shapes everything uses."""
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserFactory
from django.conf import settings

from chat import keys
from chat.errors import StorageUnavailable

log = logging.getLogger("chat.storage")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
CONDITION_FAILED = "ConditionalCheckFailedException"
BATCH_GET_SIZE = 100
BATCH_WRITE_SIZE = 25
# Threads writing batches (chat.storage.batching), besides the blocking pool.
WRITE_FLUSHERS = 2


def iso_from_ms(timestamp_ms: int) -> str:
    """The ISO-8601 form JavaScript's toISOString() gives, e.g. 2026-01-02T03:04:05.678Z."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_client_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """The process's DynamoDB client. Built once under a lock: a build costs
    tens of milliseconds of CPU, and threads that met an empty cache at once
    each built their own (eight pool threads, 0.7 s). Once built, callers
    (every storage call, on every pool thread) do not take the lock."""
    global _client
    built = _client
    if built is None:
        with _client_lock:
            if _client is None:
                _client = _build_client()
            built = _client
    return built


def reset_client() -> None:
    """Forget the client, so the next call builds one from current settings."""
    global _client
    with _client_lock:
        _client = None


def _build_client() -> Any:
    config = Config(
        # Requests are built here, not by users; botocore's validation of
        # every parameter costs CPU on each of the several calls per message.
        parameter_validation=False,
        max_pool_connections=settings.BLOCKING_THREADS + WRITE_FLUSHERS,
        connect_timeout=3,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 3},
    )
    session = botocore.session.get_session()
    session.register_component("response_parser_factory", SharedParsers())
    return boto3.session.Session(botocore_session=session).client(
        "dynamodb",
        region_name=settings.AWS_REGION,
        endpoint_url=settings.DYNAMODB_ENDPOINT_URL,
        config=config,
    )


class SharedParsers(ResponseParserFactory):
    """botocore builds a response parser for every call, and each is a
    reference cycle (it keeps bound methods of itself): garbage that only the
    cyclic collector frees, a few objects a call, which under steady traffic
    still set off young and then full collections. Parsers keep no state
    between responses, so one per protocol serves every call and thread."""

    def __init__(self) -> None:
        super().__init__()
        self._parsers: dict[str, Any] = {}

    def create_parser(self, protocol_name: str) -> Any:
        parser = self._parsers.get(protocol_name)
        if parser is None:
            parser = self._parsers.setdefault(protocol_name, super().create_parser(protocol_name))
        return parser


def paginator(operation: str) -> Any:
    """The current client's paginator for operation. botocore builds a new
    paginator class on every get_paginator call (about 0.8 ms of CPU); one
    per client and operation is enough."""
    return _paginator(client(), operation)


@functools.lru_cache(maxsize=8)
def _paginator(owner: Any, operation: str) -> Any:
    return owner.get_paginator(operation)


def table() -> str:
    return settings.DYNAMODB_TABLE


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments (:name -> value)."""
    return {f":{name}": _serializer.serialize(value) for name, value in named.items()}


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def is_condition_failure(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) == CONDITION_FAILED


@contextlib.contextmanager
def guard(operation: str, expected: frozenset[str] = frozenset({CONDITION_FAILED})) -> Iterator[None]:
    """Turn endpoint failures into StorageUnavailable; the expected error
    codes (by default a failed condition) pass through for the caller."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in expected:
            raise
        log.error("DynamoDB %s failed: %s", operation, exc)
        raise StorageUnavailable() from exc
    except BotoCoreError as exc:
        log.error("DynamoDB %s failed: %s", operation, exc)
        raise StorageUnavailable() from exc


def get(key: keys.Key) -> dict[str, Any] | None:
    with guard("GetItem"):
        response = client().get_item(TableName=table(), Key=to_item(key), ConsistentRead=True)
    return from_item(response.get("Item", {})) or None


def put(item: dict[str, Any], **conditional: Any) -> None:
    with guard("PutItem"):
        client().put_item(TableName=table(), Item=to_item(item), **conditional)


def update(key: keys.Key, **request: Any) -> dict[str, Any]:
    """UpdateItem; returns the attributes asked for with ReturnValues."""
    with guard("UpdateItem"):
        response = client().update_item(TableName=table(), Key=to_item(key), **request)
    return from_item(response.get("Attributes", {}))


def delete(key: keys.Key, **conditional: Any) -> None:
    with guard("DeleteItem"):
        client().delete_item(TableName=table(), Key=to_item(key), **conditional)


def query(**request: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query matches, across pages (stop early by not iterating)."""
    with guard("Query"):
        for page in paginator("query").paginate(TableName=table(), **request):
            for item in page.get("Items", []):
                yield from_item(item)


def query_page(**request: Any) -> list[dict[str, Any]]:
    """One page of a Query (use Limit)."""
    with guard("Query"):
        response = client().query(TableName=table(), **request)
    return [from_item(item) for item in response.get("Items", [])]


def key_id(key: keys.Key | dict[str, Any]) -> tuple[str, str]:
    return key["PK"], key["SK"]


def batch_get(wanted: list[keys.Key]) -> dict[tuple[str, str], dict[str, Any]]:
    """Consistent reads of many items, 100 keys a request; returns the items
    found, by key_id."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    unique = list({key_id(key): key for key in wanted}.values())
    for start in range(0, len(unique), BATCH_GET_SIZE):
        pending = {table(): {"Keys": [to_item(key) for key in unique[start : start + BATCH_GET_SIZE]], "ConsistentRead": True}}
        for attempt in range(8):
            with guard("BatchGetItem"):
                response = client().batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table(), []):
                values_ = from_item(item)
                found[key_id(values_)] = values_
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise StorageUnavailable("Storage is throttling reads, try again")
    return found


def batch_put(items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), BATCH_WRITE_SIZE):
        requests = [{"PutRequest": {"Item": to_item(item)}} for item in items[start : start + BATCH_WRITE_SIZE]]
        for attempt in range(8):
            with guard("BatchWriteItem"):
                response = client().batch_write_item(RequestItems={table(): requests})
            requests = response.get("UnprocessedItems", {}).get(table(), [])
            if not requests:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise StorageUnavailable("Storage is throttling writes, try again")


def _check_indexes() -> None:
    """An existing table made without LSI1 (say, by the reference system)
    cannot get it later; seq cursors then fail, so say so loudly."""
    with guard("DescribeTable"):
        description = client().describe_table(TableName=table())["Table"]
    if keys.SEQ_INDEX not in {index["IndexName"] for index in description.get("LocalSecondaryIndexes", [])}:
        log.error("table %s has no %s: afterSeq/beforeSeq paging will fail; copy it into a new table", table(), keys.SEQ_INDEX)


def create_table() -> bool:
    """Create the table with GSI1, LSI1 and TTL on `ttl`. Returns False if it
    existed. An endpoint without UpdateTimeToLive is tolerated: every read of
    expiring items filters on `ttl` itself, and reap_connections deletes them."""
    key_schema = [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}]
    spec = {
        "TableName": table(),
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": key_schema,
        "AttributeDefinitions": [
            *({"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")),
            {"AttributeName": "seq", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": keys.SEQ_INDEX,
                "KeySchema": [key_schema[0], {"AttributeName": "seq", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    }
    try:
        with guard("CreateTable", expected=frozenset({"ResourceInUseException"})):
            client().create_table(**spec)
    except ClientError:
        _check_indexes()
        return False
    with guard("DescribeTable"):
        client().get_waiter("table_exists").wait(TableName=table(), WaiterConfig={"Delay": 1})
    try:
        client().update_time_to_live(TableName=table(), TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    except ClientError as exc:
        log.warning("TTL not supported here (%s); expired items are filtered on read and reaped", error_code(exc))
    return True
