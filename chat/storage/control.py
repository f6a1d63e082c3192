"""The control plane, on boto3 (blocking, for commands, start-up and the
reaper's scan on the blocking pool): creating the table, its TTL, and
whole-table scans. Request paths use chat.storage.dynamo instead."""

import logging
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from chat.errors import StorageUnavailable
from chat.storage import dynamo, schema

log = logging.getLogger("chat.storage")
_client_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """The process's boto3 DynamoDB client, built once."""
    global _client
    with _client_lock:
        if _client is None:
            config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
            _client = boto3.client(
                "dynamodb", region_name=settings.AWS_REGION, endpoint_url=settings.DYNAMODB_ENDPOINT_URL, config=config
            )
        return _client


def reset_client() -> None:
    """Forget the clients of both planes, so the next call builds them from
    current settings."""
    global _client
    with _client_lock:
        _client = None
    dynamo.reset()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def scan(**request: Any) -> Iterator[dict[str, Any]]:
    """Every item a Scan matches (blocking; never for a request path)."""
    try:
        for page in client().get_paginator("scan").paginate(TableName=schema.table(), **request):
            for item in page.get("Items", []):
                yield dynamo.from_item(item)
    except (BotoCoreError, ClientError) as exc:
        log.error("DynamoDB Scan failed: %s", exc)
        raise StorageUnavailable() from exc


def _check_indexes() -> None:
    """An existing table made without LSI1 (say, by the reference system)
    cannot get it later; seq cursors then fail, so say so loudly."""
    description = client().describe_table(TableName=schema.table())["Table"]
    if schema.SEQ_INDEX not in {index["IndexName"] for index in description.get("LocalSecondaryIndexes", [])}:
        log.error(
            "table %s has no %s: afterSeq/beforeSeq paging will fail; copy it into a new table",
            schema.table(),
            schema.SEQ_INDEX,
        )


def create_table() -> bool:
    """Create the table (chat.storage.schema) with TTL on `ttl`. Returns
    False if it existed. An endpoint without UpdateTimeToLive is tolerated:
    every read of expiring items filters on `ttl` itself, and the reaper
    deletes them."""
    try:
        client().create_table(**schema.table_spec())
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
        _check_indexes()
        return False
    client().get_waiter("table_exists").wait(TableName=schema.table(), WaiterConfig={"Delay": 1})
    try:
        client().update_time_to_live(
            TableName=schema.table(),
            TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE},
        )
    except ClientError as exc:
        log.warning("TTL not supported here (%s); expired items are filtered on read and reaped", _error_code(exc))
    return True


def delete_table() -> None:
    client().delete_table(TableName=schema.table())
